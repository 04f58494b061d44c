"""The partial-convolution formula, written once for every backend.

Paper / NVIDIA reference semantics (mask 1 = valid, 0 = hole)::

    S        = window sum of the mask over all input channels (zero padding = hole)
    y        = (W . (X * M)) * (C_in*kh*kw) / S + b     where S > 0
    y        = 0                                        where S == 0
    new_mask = 1 where S > 0 else 0

The reference computes ``winsize / (S + 1e-8)``, which is ``inf * 0 = NaN`` in FP16 for all-hole
windows. We use the form ``winsize / max(S, 1) * clip(S, 0, 1)``, identical for binary masks
(S is then 0 or >= 1) and finite in every precision.

The functions here are generic over an :class:`Ops` implementation, so the PyTorch layer
(:mod:`pconv.training.layers`), the explicit ONNX graph and the ONNX function body of the plugin
form (:mod:`pconv.export`) all emit exactly this arithmetic. The CUDA kernel in ``plugins/``
implements the same steps in the same order (see ``pconv_kernels.cu``).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Ops(Protocol, Generic[T]):
    """The handful of element-wise operations the formula needs.

    ``T`` is the backend's tensor type (a torch.Tensor, or an ONNX value name). Scalars may be
    passed as Python floats wherever a tensor is accepted.
    """

    def clip(self, x: T, lo: float, hi: float) -> T: ...
    def maximum(self, x: T, lo: float) -> T: ...
    def div(self, a: T | float, b: T) -> T: ...
    def mul(self, a: T, b: T) -> T: ...
    def add(self, a: T, b: T) -> T: ...
    def cast_like(self, x: T, like: T) -> T: ...
    def relu(self, x: T) -> T: ...
    def leaky_relu(self, x: T, slope: float) -> T: ...


def mask_update(mask_sum: T, ops: Ops[T]) -> T:
    """New mask: 1 where the window saw any valid input, else 0 (for binary masks)."""
    return ops.clip(mask_sum, 0.0, 1.0)


def mask_ratio(mask_sum: T, window_size: T | float, ops: Ops[T]) -> tuple[T, T]:
    """Return ``(ratio, new_mask)``: the FP16-safe renormalisation factor and the updated mask.

    Computed on single-channel mask sums (cheap), in the mask's precision (FP32 in every graph).
    """
    new_mask = mask_update(mask_sum, ops)
    ratio = ops.mul(ops.div(window_size, ops.maximum(mask_sum, 1.0)), new_mask)
    return ratio, new_mask


def renormalize(raw: T, ratio: T, new_mask: T, bias: T | None, ops: Ops[T]) -> T:
    """``(raw * ratio + b) * new_mask``: rescale the masked convolution, add bias, zero the holes.

    ``raw`` is the bias-free convolution of the masked input. Multiplying by ``new_mask`` keeps
    the reference's ``y = 0 where S == 0`` (the bias is masked too).
    """
    y = ops.mul(raw, ratio)
    if bias is not None:
        y = ops.add(y, bias)
    return ops.mul(y, new_mask)


def activate(y: T, activation: str, negative_slope: float, ops: Ops[T]) -> T:
    """The layer activation. ``relu`` and ``leaky_relu`` map 0 to 0, so masked zeros stay zero."""
    if activation == "none":
        return y
    if activation == "relu":
        return ops.relu(y)
    if activation == "leaky_relu":
        return ops.leaky_relu(y, negative_slope)
    raise ValueError(f"unknown activation {activation!r}")


#: Encoded activation kinds, shared by the ONNX plugin attribute and the C++ plugin field.
ACTIVATION_CODES: dict[str, int] = {"none": 0, "relu": 1, "leaky_relu": 2}


def effective_slope(activation: str, negative_slope: float) -> float:
    """The LeakyRelu slope that reproduces ``activation`` exactly (relu: 0, none: 1).

    The ONNX function body of the plugin form expresses every activation as one LeakyRelu whose
    ``alpha`` comes from this value, since a function body cannot branch on an attribute.
    """
    return {"none": 1.0, "relu": 0.0, "leaky_relu": negative_slope}[activation]
