"""Ensemble step 1: a uint8 HWC image and a uint8 mask (non-zero = hole) of any size -> the network
inputs, padded to the size multiple with the padding marked as hole (what ``Inpainter``'s ``full``
strategy does)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pconv.errors import PconvError
from pconv.runtime.imageio import normalise, to_float32_clipped
from pconv.runtime.strategy import plan_full
from pconv.serving.models import error_response, input_array, model_info, output_tensor, parameters
from pconv.serving.repository import HOLE_MASK, NET_IMAGE, NET_MASK, RGB_IMAGE


def network_inputs(image: np.ndarray, mask: np.ndarray, info: Any) -> tuple[np.ndarray, np.ndarray]:
    """(1,3,H',W') image and (1,1,H',W') mask (1 = valid) for one uint8 image and hole mask."""
    item = normalise(image, mask, mask_is_hole=True).items[0]
    tile = plan_full(0, item.size, info)
    net_h, net_w = tile.net
    h, w = item.size
    net_image = np.zeros((1, 3, net_h, net_w), dtype=np.float32)
    net_mask = np.zeros((1, 1, net_h, net_w), dtype=np.float32)  # 0 = hole: the padding is hole
    valid = (~item.holes).astype(np.float32)
    net_image[0, :, :h, :w] = (to_float32_clipped(item.original) * valid[..., None]).transpose(2, 0, 1)
    net_mask[0, 0, :h, :w] = valid
    return net_image.astype(info.io_dtype, copy=False), net_mask.astype(info.io_dtype, copy=False)


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = parameters(args)
        self.info = model_info(params, args["model_name"])
        self.max_pixels = int(params["max_pixels"])

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb

        responses = []
        for request in requests:
            image = input_array(pb, request, RGB_IMAGE)
            mask = input_array(pb, request, HOLE_MASK)
            if image.ndim == 3 and image.shape[0] * image.shape[1] > self.max_pixels:
                responses.append(
                    error_response(
                        pb,
                        f"image {image.shape[0]}x{image.shape[1]} is larger "
                        f"than this server's limit of {self.max_pixels} pixels",
                    )
                )
                continue
            try:
                net_image, net_mask = network_inputs(image, mask, self.info)
            except PconvError as exc:
                responses.append(error_response(pb, str(exc)))
                continue
            responses.append(
                pb.InferenceResponse(
                    [output_tensor(pb, NET_IMAGE, net_image), output_tensor(pb, NET_MASK, net_mask)]
                )
            )
        return responses
