"""``pconv check``: run an exported graph with ONNX Runtime (CPU) and compare it with PyTorch.

The comparison goes through Polygraphy's comparator: ORT runs through its ``OnnxrtRunner`` and
PyTorch through :class:`TorchRunner` (a ``BaseRunner`` subclass), compared with Polygraphy's
simple element-wise comparison (``|a - b| <= atol`` or ``<= rtol·|b|``). Without a checkpoint the
graph still runs, and the check is that every output is finite and that the valid pixels of
``composite`` equal the input image exactly.

INT8 graphs are compared on real photos (the held-out builtin ones, never calibration data) with
procedural irregular masks instead of random noise, and pass on PSNR against FP32 PyTorch
(:data:`MIN_INT8_PSNR`) rather than element-wise: 8-bit activations are off by a few LSB
everywhere, which is what PSNR measures; the hole semantics are still exact (finite outputs,
``composite`` equal to the image where mask = 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pconv.config import ModelConfig
from pconv.contract import META_CONFIG, META_PRECISION
from pconv.errors import PconvError, require
from pconv.export.options import DEFAULT_TOLERANCE as DEFAULT_TOLERANCE  # stated there, once (for --help)
from pconv.export.options import MIN_INT8_PSNR as MIN_INT8_PSNR
from pconv.metadata import parse_metadata, read_onnx_metadata

if TYPE_CHECKING:
    from pconv.training.unet import PConvUNet

#: INT8: default side of the real-photo inputs (rounded up to the size multiple), as calibrated.
INT8_CHECK_SIZE = 256


class CheckError(PconvError, ValueError):
    """The model file cannot be checked (not found, not a pconv ONNX model, wrong checkpoint)."""


@dataclass(frozen=True)
class CheckRow:
    """One line of the report: an output compared (or checked) with its statistics."""

    output: str
    max_abs: float
    mean_abs: float
    max_rel: float
    passed: bool
    note: str = ""
    psnr: float = float("nan")  # INT8: dB against FP32 PyTorch, outputs clipped to [0, 1]


@dataclass
class CheckReport:
    """What :func:`check_onnx` found; ``passed`` is True only if every row passed."""

    model: str
    against: str  # "pytorch:<checkpoint>" or "self-consistency"
    shape: tuple[int, int, int]  # N, H, W
    atol: float
    rtol: float
    rows: list[CheckRow] = field(default_factory=list)
    min_psnr: float | None = None  # set for INT8 graphs: rows pass on PSNR

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    def table(self) -> str:
        """The report as a fixed-width text table."""
        n, h, w = self.shape
        head = [
            f"model:   {self.model}",
            f"against: {self.against}   inputs: N={n} H={h} W={w}   "
            + (
                f"pass: PSNR >= {self.min_psnr:g} dB"
                if self.min_psnr is not None
                else f"atol={self.atol:g} rtol={self.rtol:g}"
            ),
            f"{'output':<12} {'max-abs':>11} {'mean-abs':>11} {'max-rel':>11} {'PSNR dB':>8}  result",
        ]
        lines = [
            f"{r.output:<12} {_num(r.max_abs)} {_num(r.mean_abs)} {_num(r.max_rel)} "
            f"{'-' if np.isnan(r.psnr) else f'{r.psnr:.2f}':>8}  "
            f"{'PASS' if r.passed else 'FAIL'}{'  ' + r.note if r.note else ''}"
            for r in self.rows
        ]
        return "\n".join([*head, *lines, f"overall: {'PASS' if self.passed else 'FAIL'}"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "against": self.against,
            "shape": list(self.shape),
            "atol": self.atol,
            "rtol": self.rtol,
            "min_psnr": self.min_psnr,
            "passed": self.passed,
            "rows": [r.__dict__ for r in self.rows],
        }


def _num(value: float) -> str:
    return f"{'-':>11}" if np.isnan(value) else f"{value:>11.3e}"


#: The graph contract every check needs (see the README's export section).
GRAPH_INPUTS = ("image", "mask")
GRAPH_OUTPUTS = ("output", "composite")


def read_onnx_info(path: Path) -> tuple[ModelConfig, dict[str, str], dict[str, Any]]:
    """The config, metadata and input description (dims, dtype) of one of our ONNX files."""
    onnx = require("onnx", "export")
    if not path.is_file():
        raise CheckError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)  # type: ignore[attr-defined]
    except Exception as exc:
        raise CheckError(f"{path} is not a readable ONNX model ({exc})") from exc
    meta = read_onnx_metadata(path, error=CheckError)
    parse_metadata(meta, path, require_config=True, error=CheckError)
    have_inputs = {i.name: i for i in model.graph.input}
    have_outputs = {o.name for o in model.graph.output}
    missing = [n for n in GRAPH_INPUTS if n not in have_inputs] + [
        n for n in GRAPH_OUTPUTS if n not in have_outputs
    ]
    if missing:
        kind = "input" if missing[0] in GRAPH_INPUTS else "output"
        contract = f"inputs {', '.join(GRAPH_INPUTS)} and outputs {', '.join(GRAPH_OUTPUTS)}"
        raise CheckError(
            f"{path} has pconv metadata but lacks the graph {kind} {missing[0]!r} (a pconv export has "
            f"{contract}); re-export it with `pconv export CKPT -o model.onnx`"
        )
    image = have_inputs["image"]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in image.type.tensor_type.shape.dim]
    elem = image.type.tensor_type.elem_type
    io_dtype = np.float16 if elem == onnx.TensorProto.FLOAT16 else np.float32  # type: ignore[attr-defined]
    return ModelConfig.from_json(meta[META_CONFIG]), meta, {"dims": dims, "dtype": io_dtype}


def make_inputs(
    batch: int, height: int, width: int, seed: int, dtype: type[np.generic] = np.float32
) -> dict[str, np.ndarray]:
    """Seeded test inputs: a random image and random rectangular holes, ~0-60% per image."""
    rng = np.random.default_rng(seed)
    image = rng.random((batch, 3, height, width), dtype=np.float32)
    mask = np.ones((batch, 1, height, width), dtype=np.float32)
    for b in range(batch):
        target = rng.uniform(0.0, 0.6)
        while 1.0 - mask[b].mean() < target:
            hh, ww = rng.integers(1, max(2, height // 3)), rng.integers(1, max(2, width // 3))
            y, x = rng.integers(0, height - hh + 1), rng.integers(0, width - ww + 1)
            mask[b, :, y : y + hh, x : x + ww] = 0.0
    return {"image": image.astype(dtype), "mask": mask.astype(dtype)}


def photo_inputs(batch: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Real test inputs: crops of the held-out builtin photos with procedural irregular holes."""
    from pconv.data.images import heldout_crops
    from pconv.data.masks import generate_irregular_mask
    from pconv.export.quantize import CALIBRATION_HOLE_RATIO

    crops = heldout_crops(max(height, width), count=batch, seed=seed)
    image = np.stack([c[:height, :width].transpose(2, 0, 1) for c in crops]).astype(np.float32) / 255.0
    rng = np.random.default_rng([seed, 2])
    holes = [generate_irregular_mask(height, width, rng, hole_ratio=CALIBRATION_HOLE_RATIO) for _ in crops]
    mask = np.stack([(~h).astype(np.float32)[None] for h in holes])
    return {"image": np.ascontiguousarray(image), "mask": mask}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of ``a`` against ``b``, both clipped to [0, 1] (what an image shows); inf if equal."""
    diff = np.clip(a.astype(np.float64), 0, 1) - np.clip(b.astype(np.float64), 0, 1)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def _torch_runner_class() -> type:
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata

    class TorchRunner(BaseRunner):  # type: ignore[misc]
        """Polygraphy runner for the PyTorch model: ``output`` and ``composite`` in FP32."""

        def __init__(self, model: PConvUNet, input_shape: tuple[int, int, int]) -> None:
            super().__init__(name="pytorch")
            self.model = model
            self.input_shape = input_shape

        def activate_impl(self) -> None:
            self.model.eval()

        def deactivate_impl(self) -> None:
            pass

        def get_input_metadata_impl(self) -> Any:
            n, h, w = self.input_shape
            meta = TensorMetadata()
            meta.add("image", np.float32, (n, 3, h, w))
            meta.add("mask", np.float32, (n, 1, h, w))
            return meta

        def infer_impl(self, feed_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            import time

            import torch

            from pconv.training.unet import composite

            start = time.perf_counter()
            image = torch.from_numpy(np.asarray(feed_dict["image"], dtype=np.float32))
            mask = torch.from_numpy(np.asarray(feed_dict["mask"], dtype=np.float32))
            with torch.inference_mode():
                output = self.model(image, mask)
                comp = composite(image, mask, output)
            self.inference_time = time.perf_counter() - start
            return {"output": output.numpy(), "composite": comp.numpy()}

    return TorchRunner


def _stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rel = diff / np.maximum(np.abs(b.astype(np.float64)), 1e-12)
    return float(diff.max()), float(diff.mean()), float(rel.max())


def check_onnx(
    onnx_path: str | Path,
    checkpoint: str | Path | PConvUNet | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    batch: int | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    verbose: bool = False,
    min_psnr: float | None = None,
) -> CheckReport:
    """Run ``onnx_path`` with ORT (CPU); compare with the checkpoint's PyTorch model if given.

    Sizes default to the graph's fixed dims, else 1 x (2·2^depth) x (2·2^depth) (INT8: at least
    :data:`INT8_CHECK_SIZE`). Tolerances default to :data:`DEFAULT_TOLERANCE` for the graph's
    precision; INT8 graphs pass on ``min_psnr`` (default :data:`MIN_INT8_PSNR`) on real photos.
    """
    require("onnxruntime", "export")
    require("polygraphy", "export")
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator
    from polygraphy.logger import G_LOGGER

    path = Path(onnx_path)
    config, meta, inputs = read_onnx_info(path)
    int8 = meta.get(META_PRECISION) == "int8"
    d_atol, d_rtol = DEFAULT_TOLERANCE.get(meta.get(META_PRECISION, "fp32"), DEFAULT_TOLERANCE["fp32"])
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    if min_psnr is not None and not int8:
        raise CheckError(f"--min-psnr applies to INT8 graphs; {path.name} is {meta.get(META_PRECISION)}")
    fixed_n, _, fixed_h, fixed_w = inputs["dims"]
    m = config.size_multiple
    default_size = max(2 * m, -(-INT8_CHECK_SIZE // m) * m) if int8 else 2 * m
    n = _pick("batch", batch, fixed_n, 1)
    h = _pick("height", height, fixed_h, default_size)
    w = _pick("width", width, fixed_w, default_size)
    try:
        config.check_size(h, w)
    except ValueError as exc:
        raise CheckError(str(exc)) from exc
    feeds = photo_inputs(n, h, w, seed) if int8 else make_inputs(n, h, w, seed, inputs["dtype"])

    model = None
    if checkpoint is not None:
        from pconv.export.onnx_export import load_source

        model = load_source(checkpoint)
        if model.config != config:
            raise CheckError(
                f"the checkpoint's model config ({model.config.to_json()}) differs from the one "
                f"{path.name} was exported from ({config.to_json()}); pass the matching checkpoint"
            )
    report = CheckReport(
        model=str(path),
        against=f"pytorch:{checkpoint if isinstance(checkpoint, str | Path) else 'model'}"
        if model is not None
        else "self-consistency (no --against: finite outputs, composite == image where mask = 1)",
        shape=(n, h, w),
        atol=atol,
        rtol=rtol,
        min_psnr=(MIN_INT8_PSNR if min_psnr is None else min_psnr) if int8 and model is not None else None,
    )
    ort_runner = OnnxrtRunner(SessionFromOnnx(str(path), providers=["cpu"]), name="onnxruntime")
    with G_LOGGER.verbosity(G_LOGGER.INFO if verbose else G_LOGGER.ERROR):
        if model is None:
            results = Comparator.run([ort_runner], data_loader=[feeds])
            (ort_out,) = next(iter(results.values()))
            _self_check(report, feeds, ort_out)
            return report
        runners = [_torch_runner_class()(model, (n, h, w)), ort_runner]
        results = Comparator.run(runners, data_loader=[feeds])
        # INT8 passes on PSNR: Polygraphy's element-wise verdict (and its FAILED log lines) would mislead.
        accuracy = (
            None
            if report.min_psnr is not None
            else Comparator.compare_accuracy(results, compare_func=_compare_func(atol, rtol))
        )
    torch_out, ort_out = (iters[0] for iters in results.values())
    per_output = (
        {name: True for name in ("output", "composite")}
        if accuracy is None
        else next(iter(accuracy[0].values()))[0]
    )
    for name in ("output", "composite"):
        a = np.asarray(ort_out[name], dtype=np.float32)
        ref = np.asarray(torch_out[name])
        finite = bool(np.isfinite(a).all())
        max_abs, mean_abs, max_rel = _stats(a, ref)
        passed, note = bool(per_output[name]) and finite, "" if finite else "non-finite values"
        quality = float("nan")
        if report.min_psnr is not None:
            quality = psnr(a, ref)
            passed = finite and quality >= report.min_psnr
            if name == "composite":  # the hole semantics stay exact in INT8
                valid = np.broadcast_to(feeds["mask"] > 0.5, a.shape)
                exact = bool(np.array_equal(a[valid], feeds["image"][valid]))
                passed = passed and exact
                note = note or ("valid pixels == image" if exact else "valid pixels differ from the image")
        report.rows.append(CheckRow(name, max_abs, mean_abs, max_rel, passed, note, quality))
    return report


def _compare_func(atol: float, rtol: float) -> Any:
    try:  # Polygraphy >= 0.50 deprecates CompareFunc.simple in favour of this class
        from polygraphy.comparator.compare import SimpleCompareFunc

        return SimpleCompareFunc(atol=atol, rtol=rtol)
    except ImportError:
        from polygraphy.comparator import CompareFunc

        return CompareFunc.simple(atol=atol, rtol=rtol)


def _self_check(report: CheckReport, feeds: dict[str, np.ndarray], out: Any) -> None:
    """No reference: outputs must be finite, and composite must equal the image where mask = 1."""
    output = np.asarray(out["output"])
    report.rows.append(
        CheckRow(
            "output",
            float("nan"),
            float("nan"),
            float("nan"),
            bool(np.isfinite(output).all()),
            "finite" if np.isfinite(output).all() else "non-finite values",
        )
    )
    comp = np.asarray(out["composite"])
    valid = np.broadcast_to(feeds["mask"] > 0.5, comp.shape)
    diff = np.abs(comp[valid].astype(np.float64) - feeds["image"][valid].astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    report.rows.append(
        CheckRow(
            "composite",
            max_abs,
            float(diff.mean()) if diff.size else 0.0,
            float("nan"),
            bool(np.isfinite(comp).all()) and max_abs == 0.0,
            "valid pixels vs image",
        )
    )


def _pick(label: str, requested: int | None, fixed: int | None, default: int) -> int:
    if requested is not None and fixed is not None and requested != fixed:
        raise CheckError(f"the graph has a fixed {label} of {fixed}; got --{label} {requested}")
    value = requested if requested is not None else (fixed if fixed is not None else default)
    if value <= 0:
        raise CheckError(f"--{label} must be positive, got {value}")
    return value


def report_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
