"""The engine builder's one error class (a :class:`~pconv.errors.PconvError`, printed as one line)."""

from __future__ import annotations

from pconv.errors import PconvError


class BuildError(PconvError):
    """The ONNX, the shapes or the TensorRT build failed; the message says what to change."""
