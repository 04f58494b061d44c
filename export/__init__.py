"""Stage 2, ONNX: build the graph from the layer specs (explicit or plugin form), check parity.

Import what you need from its module (``pconv.export.onnx_export.export_onnx``,
``pconv.export.check.check_onnx``): importing this package imports nothing (no onnx, no torch).
"""
