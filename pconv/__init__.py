"""pconv: partial-convolution inpainting from training to FP16 TensorRT inference.

The stages are subpackages: :mod:`pconv.training` (PyTorch), :mod:`pconv.export` (ONNX, TensorRT
engines), :mod:`pconv.plugins` (the fused TensorRT plugin), :mod:`pconv.runtime` (inference without
torch) and :mod:`pconv.eval` (metrics and baselines). Importing ``pconv`` itself pulls in nothing heavy.
"""

from pconv._version import __version__

__all__ = ["__version__"]
