"""The U-Net traversal, written once for every backend.

The network is :meth:`ModelConfig.layer_specs` walked in order::

    x, m = normalize(image, mask)                       # ImageNet normalisation inside the model
    skips = {"input": (x, m)}
    for each layer spec:
        encoder:  x, m = layer(spec, [x], [m]);  skips[spec.name] = (x, m)
        decoder:  skip_x, skip_m = skips[spec.skip]
                  x, m = layer(spec, [up2(x), skip_x], [up2(m), skip_m])
    output = denormalize(x)

``up2`` is nearest ×2 upsampling; a decoder layer reads the channel concatenation of its parts
(upsampled previous output first, then the skip), each part with its own mask. Like
:mod:`pconv.formula`, the walk is generic over a :class:`NetworkOps` implementation, so the
PyTorch model (:mod:`pconv.training.unet`), the ONNX exporter (:mod:`pconv.export.onnx_export`)
and the fused-kernel harness (:mod:`pconv.plugins.torch_harness`) all run this same wiring; each
backend supplies only the per-layer call (partial conv + BatchNorm + activation, emitted ONNX
nodes, one fused kernel) and the three tensor steps. ``pconv.training.reference`` stays written
out on purpose: it is the independent check against this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from pconv.config import LayerSpec

T = TypeVar("T")

#: The name under which the normalised network input is available as a skip (``LayerSpec.skip``).
INPUT_SKIP = "input"


class NetworkOps(Protocol, Generic[T]):
    """What one backend supplies to :func:`unet_forward`; ``T`` is its tensor (or value-name) type."""

    def normalize(self, image: T, mask: T) -> tuple[T, T]:
        """The first layer's ``(features, mask)`` from the [0, 1] image and the 1 = valid mask."""
        ...

    def upsample2x(self, x: T) -> T:
        """Nearest ×2 upsampling of features or a mask (a backend may defer it into the layer)."""
        ...

    def layer(self, spec: LayerSpec, features: Sequence[T], masks: Sequence[T]) -> tuple[T, T]:
        """One partial-convolution layer over channel-concatenated parts, one mask per part.

        Returns ``(features, new_mask)``. Encoder layers get one part; decoder layers get the
        upsampled previous output and the skip, in that order.
        """
        ...

    def denormalize(self, y: T) -> T:
        """The network output in the image's [0, 1] scale, from the last layer's features."""
        ...


def unet_forward(specs: Sequence[LayerSpec], image: T, mask: T, ops: NetworkOps[T]) -> T:
    """Run the U-Net given by ``specs`` (encoder 1..depth, then decoder depth..1) through ``ops``."""
    x, m = ops.normalize(image, mask)
    skips: dict[str, tuple[T, T]] = {INPUT_SKIP: (x, m)}
    for spec in specs:
        if spec.upsample_input:
            if spec.skip is None or spec.skip not in skips:
                raise ValueError(f"{spec.name}: skip {spec.skip!r} is not an earlier encoder output")
            skip_x, skip_m = skips[spec.skip]
            x, m = ops.layer(spec, [ops.upsample2x(x), skip_x], [ops.upsample2x(m), skip_m])
        else:
            x, m = ops.layer(spec, [x], [m])
            skips[spec.name] = (x, m)
    return ops.denormalize(x)
