"""The TensorRT route on Triton: a version-compatible engine carrying the pconv plugin, served by the
NGC container's TensorRT backend. Needs an NVIDIA GPU, TensorRT and that server: it is not run in CI.

To run it on a GPU machine::

    pconv build model.onnx -o model.engine --version-compatible      # the plugin is serialised inside
    pconv triton-repo model.engine -o models --kind gpu
    docker run --gpus all --rm -p 8001:8001 -v $PWD/models:/models nvcr.io/nvidia/tritonserver:25.01-py3 \\
        tritonserver --model-repository=/models --backend-config=tensorrt,version-compatible=true
    export PCONV_TRITON_TRT_URL=grpc://127.0.0.1:8001/pconv PCONV_TRITON_TRT_ENGINE=model.engine
    pytest tests/test_serving_gpu.py
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import requires_tensorrt

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]
URL_ENV, ENGINE_ENV = "PCONV_TRITON_TRT_URL", "PCONV_TRITON_TRT_ENGINE"


@requires_tensorrt
def test_plugin_engine_served_by_tritons_tensorrt_backend_matches_in_process() -> None:
    if not (os.environ.get(URL_ENV) and os.environ.get(ENGINE_ENV)):
        pytest.skip(
            f"needs a Triton server with the TensorRT backend: set {URL_ENV} and {ENGINE_ENV} (docstring)"
        )
    from pconv.runtime import Inpainter

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    mask = np.zeros((300, 420), np.uint8)
    mask[80:200, 100:300] = 1
    with Inpainter(os.environ[ENGINE_ENV]) as local, Inpainter(os.environ[URL_ENV]) as remote:
        assert remote.info.size_multiple == local.info.size_multiple
        expected, got = local(image, mask, strategy="full"), remote(image, mask, strategy="full")
    assert np.array_equal(got[mask == 0], image[mask == 0])
    assert np.array_equal(got, expected)  # the same engine on the same GPU
