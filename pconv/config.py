"""The model configuration: defined once, saved with every checkpoint and every exported model.

Pure Python (no torch, no onnx) so the runtime can read it from ONNX metadata. ``layer_specs()``
derives every partial-convolution layer of the U-Net from the config; the PyTorch model, the ONNX
exporter, the plugin tests and the GPU benchmarks all iterate this same list.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Activation = Literal["none", "relu", "leaky_relu"]

# Paper channel widths per encoder level; levels past the list stay at the last value (512).
_PAPER_ENCODER = ((7, 64), (5, 128), (5, 256))
_PAPER_DEEP = (3, 512)
DECODER_KERNEL = 3
LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class LayerSpec:
    """One partial convolution of the network, with everything needed to run or fuse it.

    ``mask_channel_weights`` gives, for each single-channel mask that feeds the layer, how many
    feature channels it stands for: encoder layers have one mask (weight = C_in); decoder layers
    concatenate the upsampled mask and the skip mask (weights = their channel counts). The window
    mask sum is then ``sum_j w_j * boxsum(mask_j)`` and the full window size is ``C_in * kh * kw``.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    mask_channel_weights: tuple[int, ...]
    batch_norm: bool
    bias: bool
    activation: Activation
    negative_slope: float = 0.0
    upsample_input: bool = False  # decoder: nearest x2 of the previous features/mask before concat
    skip: str | None = None  # decoder: name of the encoder output concatenated ("input" = the image)

    @property
    def window_size(self) -> int:
        return self.in_channels * self.kernel * self.kernel

    def output_size(self, size: int) -> int:
        """Spatial output size for an input of ``size`` (standard convolution arithmetic)."""
        return (size + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of a :class:`pconv.training.unet.PConvUNet` (the paper's U-Net at ``depth=8``)."""

    depth: int = 8
    width: float = 1.0
    in_channels: int = 3
    # Normalisation applied inside the model so every graph keeps the [0, 1] image contract.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 2 <= self.depth <= 10:
            raise ValueError(f"depth must be in [2, 10], got {self.depth}")
        if not 0.0 < self.width <= 4.0:
            raise ValueError(f"width must be in (0, 4], got {self.width}")
        if self.in_channels != 3:
            raise ValueError("only 3-channel (RGB) images are supported")

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (each encoder level halves the size)."""
        return 2**self.depth

    def channels(self, paper_channels: int) -> int:
        return max(1, round(paper_channels * self.width))

    def encoder_kernels_and_channels(self) -> list[tuple[int, int]]:
        levels = list(_PAPER_ENCODER) + [_PAPER_DEEP] * max(0, self.depth - len(_PAPER_ENCODER))
        return [(k, self.channels(c)) for k, c in levels[: self.depth]]

    def layer_specs(self) -> list[LayerSpec]:
        """Every partial convolution, in execution order: encoder 1..depth, then decoder depth..1."""
        specs: list[LayerSpec] = []
        enc = self.encoder_kernels_and_channels()
        c_prev = self.in_channels
        for i, (k, c) in enumerate(enc, start=1):
            first = i == 1
            specs.append(
                LayerSpec(
                    name=f"enc{i}",
                    in_channels=c_prev,
                    out_channels=c,
                    kernel=k,
                    stride=2,
                    padding=(k - 1) // 2,
                    dilation=1,
                    mask_channel_weights=(c_prev,),
                    batch_norm=not first,
                    bias=first,
                    activation="relu",
                )
            )
            c_prev = c
        skip_channels = [self.in_channels] + [c for _, c in enc[:-1]]
        for i in range(self.depth, 0, -1):
            c_skip = skip_channels[i - 1]
            last = i == 1
            c_out = self.in_channels if last else skip_channels[i - 1]
            specs.append(
                LayerSpec(
                    name=f"dec{i}",
                    in_channels=c_prev + c_skip,
                    out_channels=c_out,
                    kernel=DECODER_KERNEL,
                    stride=1,
                    padding=DECODER_KERNEL // 2,
                    dilation=1,
                    mask_channel_weights=(c_prev, c_skip),
                    batch_norm=not last,
                    bias=last,
                    activation="none" if last else "leaky_relu",
                    negative_slope=0.0 if last else LEAKY_SLOPE,
                    upsample_input=True,
                    skip="input" if last else f"enc{i - 1}",
                )
            )
            c_prev = c_out
        return specs

    def check_size(self, height: int, width: int) -> None:
        """Raise the one clear error for a spatial size the network cannot take."""
        m = self.size_multiple
        if height % m or width % m or height <= 0 or width <= 0:
            raise ValueError(
                f"image height and width must be positive multiples of 2^depth = {m} "
                f"(depth={self.depth}); got {height}x{width}. Pad the image (pconv.runtime does this "
                "for you) or pick a size such as "
                f"{max(m, (height // m) * m)}x{max(m, (width // m) * m)}."
            )

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        kwargs = dict(data)
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(float(v) for v in kwargs[key])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))
