"""Stage 3a, TensorRT engines: build an engine from a pconv ONNX model (``pconv build``).

Imports the core only; TensorRT and cuda-python are imported when a build starts.
"""
