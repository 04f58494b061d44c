"""Stage 3a, TensorRT engines: build an engine from a pconv ONNX model (``pconv build``).

One step a module, in the order a build runs them: :mod:`~pconv.engine.facts` (read the ONNX) and
:mod:`~pconv.engine.profile` (the shape range), both without TensorRT; :mod:`~pconv.engine.plugin`
(the plugin library, loaded before parsing); :mod:`~pconv.engine.network` (typing and the parse);
:mod:`~pconv.engine.build` (configure, serialize, write, and :func:`~pconv.engine.build.build_engine`
running them all); :mod:`~pconv.engine.timing_cache` (the locked cache merge);
:mod:`~pconv.engine.report` (the result). Imports the core only; TensorRT and cuda-python are
imported when a build starts.
"""
