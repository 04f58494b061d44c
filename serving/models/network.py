"""The network on pconv's own ONNX Runtime session (``pconv serve``; the PyPI tritonserver has no
ONNX Runtime backend). Requests of one shape that the dynamic batcher hands over together run as
one ONNX Runtime call; each request gets its own slice back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pconv.contract import INPUT_CHANNELS, INPUT_NAMES, OUTPUT_NAMES
from pconv.errors import PconvError
from pconv.runtime.onnxruntime_backend import OnnxRuntimeBackend
from pconv.serving.models import error_response, input_array, output_tensor, parameters


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = parameters(args)
        path = Path(args["model_repository"]) / str(args["model_version"]) / params["model_file"]
        self.backend = OnnxRuntimeBackend(path, threads=int(params["threads"]))
        self.max_pixels = int(params["max_pixels"])
        self.dtype = self.backend.info.io_dtype
        self.multiple = self.backend.info.size_multiple

    def _check(self, arrays: list[np.ndarray]) -> str | None:
        image, mask = arrays
        if image.ndim != 4 or mask.ndim != 4:
            return f"image and mask must be (N,C,H,W); got {image.shape} and {mask.shape}"
        for name, array in zip(INPUT_NAMES, arrays):
            if array.shape[1] != INPUT_CHANNELS[name]:
                return f"{name} must have {INPUT_CHANNELS[name]} channel(s); got shape {array.shape}"
        if image.shape[0] != mask.shape[0] or image.shape[2:] != mask.shape[2:]:
            return f"image {image.shape} and mask {mask.shape} differ in batch or size"
        h, w = image.shape[2:]
        if h % self.multiple or w % self.multiple:
            return f"height and width must be multiples of {self.multiple}; got {h}x{w} (pad them)"
        if h * w > self.max_pixels:
            return f"{h}x{w} is larger than this server's limit of {self.max_pixels} pixels per image"
        if not (np.isfinite(image).all() and np.isfinite(mask).all()):
            return "image and mask must be finite"
        return None

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb

        responses: list[Any] = [None] * len(requests)
        groups: dict[tuple[tuple[int, ...], ...], list[tuple[int, list[np.ndarray]]]] = {}
        for index, request in enumerate(requests):
            arrays = [input_array(pb, request, n) for n in INPUT_NAMES]
            problem = self._check(arrays)
            if problem is not None:
                responses[index] = error_response(pb, problem)
                continue
            groups.setdefault(tuple(a.shape for a in arrays), []).append((index, arrays))
        for members in groups.values():
            image = np.concatenate([m[1][0] for m in members]) if len(members) > 1 else members[0][1][0]
            mask = np.concatenate([m[1][1] for m in members]) if len(members) > 1 else members[0][1][1]
            try:
                result = self.backend.run(image, mask)
            except PconvError as exc:
                for index, _ in members:
                    responses[index] = error_response(pb, str(exc))
                continue
            start = 0
            for index, arrays in members:
                stop = start + arrays[0].shape[0]
                wanted = set(requests[index].requested_output_names()) or set(OUTPUT_NAMES)
                tensors = [output_tensor(pb, n, result[n][start:stop]) for n in OUTPUT_NAMES if n in wanted]
                responses[index] = pb.InferenceResponse(output_tensors=tensors)
                start = stop
        return responses

    def finalize(self) -> None:
        self.backend.close()
