"""Ensemble step 3: the network output and the caller's own uint8 pixels -> the composite (valid
pixels copied bit-for-bit, holes from the network clipped and rounded; ``Inpainter``'s composite)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pconv.errors import PconvError
from pconv.runtime.imageio import composite, normalise
from pconv.serving.models import error_response, input_array, output_tensor
from pconv.serving.repository import COMPOSITE, HOLE_MASK, NET_OUTPUT, RGB_IMAGE


def composite_rgb8(image: np.ndarray, mask: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The uint8 HWC result for one image, its hole mask and the network's (1,3,H',W') output."""
    item = normalise(image, mask, mask_is_hole=True).items[0]
    h, w = item.size
    fill = np.asarray(output, dtype=np.float32)[0, :, :h, :w].transpose(1, 2, 0)
    result: np.ndarray = composite(item.original, item.holes, fill)
    return result


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        pass

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb

        responses = []
        for request in requests:
            image = input_array(pb, request, RGB_IMAGE)
            mask = input_array(pb, request, HOLE_MASK)
            output = input_array(pb, request, NET_OUTPUT)
            try:
                result = composite_rgb8(image, mask, output)
            except PconvError as exc:
                responses.append(error_response(pb, str(exc)))
                continue
            responses.append(pb.InferenceResponse([output_tensor(pb, COMPOSITE, result)]))
        return responses
