"""The few CUDA runtime calls pconv needs (through cuda-python), each checked for errors."""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

from pconv.errors import BackendUnavailableError, CudaError
from pconv.trt import INSTALL_HINT


class Cuda:
    """The few CUDA runtime calls pconv needs, through cuda-python, each checked for errors.

    Uses ``cuda.bindings.runtime`` (cuda-python >= 12.6), falling back to ``cuda.cudart`` for
    older releases, as NVIDIA's TensorRT samples do. Every call returns ``(err, *values)``.
    """

    def __init__(self) -> None:
        self.rt = self._import_runtime()

    @staticmethod
    def _import_runtime() -> ModuleType:
        errors: list[str] = []
        for name in ("cuda.bindings.runtime", "cuda.cudart"):
            try:
                return importlib.import_module(name)
            except ImportError as exc:
                errors.append(f"{name}: {exc}")
        raise BackendUnavailableError(
            f"cuda-python is not installed: run `{INSTALL_HINT}` ({'; '.join(errors)})"
        )

    def check(self, result: Any, what: str) -> Any:
        """Unpack a cuda-python result tuple, raising :class:`CudaError` on failure."""
        if isinstance(result, tuple):
            err, values = result[0], result[1:]
        else:
            err, values = result, ()
        if int(err) != 0:
            name = str(err)
            with contextlib.suppress(Exception):
                got = self.rt.cudaGetErrorName(err)
                raw = got[1] if isinstance(got, tuple) else got
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
            hint = ""
            if "NoDevice" in name or "InsufficientDriver" in name or "NotFound" in name:
                hint = ": TensorRT needs an NVIDIA GPU with a working driver (check `nvidia-smi`)"
            elif "MemoryAllocation" in name:
                hint = ": the GPU is out of memory (use a smaller batch or image size)"
            raise CudaError(f"CUDA call {what} failed with {name}{hint}")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    # device ------------------------------------------------------------------------------------
    def device_count(self) -> int:
        return int(self.check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def set_device(self, device: int) -> None:
        count = self.device_count()
        if not 0 <= device < count:
            raise CudaError(f"CUDA device {device} does not exist (this machine has {count})")
        self.check(self.rt.cudaSetDevice(device), f"cudaSetDevice({device})")

    def device_properties(self, device: int) -> tuple[str, tuple[int, int]]:
        """``(name, (major, minor))`` of ``device``: what an engine is tied to."""
        props = self.check(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        raw = props.name
        name = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
        return name.split("\x00", 1)[0].strip(), (int(props.major), int(props.minor))

    def pointer_device(self, ptr: int) -> int | None:
        """The device that owns ``ptr``, or None for host / unregistered memory."""
        attrs = self.check(self.rt.cudaPointerGetAttributes(ptr), "cudaPointerGetAttributes")
        kind = int(attrs.type)
        device_kinds = {
            int(self.rt.cudaMemoryType.cudaMemoryTypeDevice),
            int(self.rt.cudaMemoryType.cudaMemoryTypeManaged),
        }
        return int(attrs.device) if kind in device_kinds else None

    # memory ------------------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes})"))

    def free(self, ptr: int) -> None:
        self.check(self.rt.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMallocHost(max(nbytes, 1)), f"cudaMallocHost({nbytes})"))

    def free_host(self, ptr: int) -> None:
        self.check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def copy_async(self, dst: int, src: int, nbytes: int, to_device: bool, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind
        direction = kind.cudaMemcpyHostToDevice if to_device else kind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, direction, stream), "cudaMemcpyAsync")

    def copy_device_to_host(self, dst: int, src: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpy(dst, src, nbytes, kind), "cudaMemcpy")

    # streams and graphs ------------------------------------------------------------------------
    def create_stream(self) -> Any:
        flags = getattr(self.rt, "cudaStreamNonBlocking", 1)
        return self.check(self.rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")

    def synchronize(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def destroy_stream(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        return self.check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")

    def instantiate(self, graph: Any) -> Any:
        return self.check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph_exec: Any, stream: Any) -> None:
        self.check(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def destroy_graph(self, graph: Any, graph_exec: Any) -> None:
        if graph_exec is not None:
            self.check(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        if graph is not None:
            self.check(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
