"""The Backend base class: what a backend that implements only run/close gets by default."""

from __future__ import annotations

import numpy as np
import pytest

from pconv.errors import DeviceInputError
from pconv.runtime import Backend, Inpainter, ModelInfo, open_backend
from pconv.runtime.onnxruntime_backend import OnnxRuntimeBackend


class _Grey(Backend):
    """A minimal backend: fills everything with mid-grey."""

    name = "grey"

    def __init__(self) -> None:
        self.info = ModelInfo(
            size_multiple=8, mask_convention="1=valid,0=hole", io_dtype=np.dtype(np.float32)
        )
        self.closed = 0

    def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        grey = np.full_like(image, 0.5)
        return {"output": grey, "composite": grey}

    def close(self) -> None:
        self.closed += 1


def test_the_interface_cannot_be_instantiated_without_run_and_close() -> None:
    class Incomplete(Backend):
        def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


def test_defaults_no_providers_no_device_support_and_a_one_line_refusal() -> None:
    backend = _Grey()
    assert backend.providers == () and backend.supports_device is False
    assert backend.describe() == "grey"
    with pytest.raises(DeviceInputError) as info:
        backend.run_device(object(), object())
    message = str(info.value)
    assert "grey backend cannot take GPU arrays" in message and "\n" not in message


def test_the_context_manager_closes_once_per_exit() -> None:
    with _Grey() as backend:
        assert backend.closed == 0
    assert backend.closed == 1
    with pytest.raises(RuntimeError), backend:
        raise RuntimeError("boom")  # closed on errors too, and the error propagates
    assert backend.closed == 2


def test_an_inpainter_over_a_custom_backend_uses_its_refusal() -> None:
    inpainter = Inpainter.from_backend(_Grey())
    with pytest.raises(DeviceInputError, match="grey backend cannot take GPU arrays"):
        inpainter.run_device(object(), object())
    image = np.full((8, 8, 3), 7, np.uint8)
    holes = np.zeros((8, 8), bool)
    holes[2:4, 2:4] = True
    out = inpainter(image, holes)
    assert np.all(out[holes] == 128) and np.all(out[~holes] == 7)


def test_onnxruntime_backend_is_a_backend_with_providers(tiny_onnx_factory) -> None:
    path = tiny_onnx_factory()
    with open_backend(path, providers=["CPUExecutionProvider"]) as backend:
        assert isinstance(backend, OnnxRuntimeBackend) and isinstance(backend, Backend)
        assert backend.providers == ("CPUExecutionProvider",)
        assert backend.describe() == "onnxruntime (CPUExecutionProvider)"
        assert not backend.supports_device
    assert backend.session is None  # closed by the with block
