"""TensorRT backend: runs a ``pconv build`` engine with cuda-python, host or zero-copy device I/O.

Importing this module needs numpy only. TensorRT and cuda-python (``cuda.bindings``, or the older
``cuda.cudart``) are imported when a :class:`TensorRTBackend` is created, so ``pconv.runtime``
stays importable (and its errors clear) on machines without them. torch and onnx are never used.

The engine's sidecar ``<engine>.json`` (written by :func:`pconv.engine.build.build_engine`) says
what the runtime needs without the ONNX: the pconv metadata, the profile shapes, the I/O dtypes,
the GPU and TensorRT version it was built with and whether it uses the plugin. It is compared with
the running GPU and TensorRT *before* deserialising, so a foreign engine gives one clear error
(that policy: :mod:`pconv.runtime.sidecar`; GPU array views and owned memory:
:mod:`pconv.runtime.device_arrays`).

Threading: one execution context per backend, guarded by a lock (calls from several threads are
safe and serialised). For concurrent GPU work, open one backend per thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pconv.contract import INPUT_CHANNELS, INPUT_NAMES, OUTPUT_NAMES, Shape3
from pconv.errors import (
    CudaError,
    DeviceInputError,
    EngineIncompatibleError,
    InputError,
    ModelLoadError,
    PconvError,
    PluginLibraryError,
)
from pconv.runtime.backend import Backend, ModelInfo
from pconv.runtime.device_arrays import (
    DeviceArray,
    DeviceMemory,
    PinnedMemory,
    address,
    cuda_array_view,
    stream_handle,
)
from pconv.runtime.sidecar import (
    check_batch_shape,
    check_compatibility,
    model_info_from_sidecar,
    read_sidecar,
)
from pconv.trt import import_tensorrt
from pconv.trt.cuda import Cuda
from pconv.trt.log import log_tail, make_trt_logger
from pconv.trt.registry import find_library, load_plugin_library

if TYPE_CHECKING:
    import tensorrt as trt

logger = logging.getLogger("pconv.runtime")

#: Shape-keyed buffer sets kept alive at once (each holds device + pinned host memory).
MAX_CACHED_SHAPES = 4


# -- the backend -------------------------------------------------------------------------------
@dataclass
class _ShapeBuffers:
    """Device and pinned host buffers for one (N, H, W), allocated once and reused."""

    key: Shape3
    shapes: dict[str, tuple[int, ...]]
    device: dict[str, DeviceMemory]
    host: dict[str, PinnedMemory]

    def free(self) -> None:
        for mem in self.device.values():
            mem.free()
        for pinned in self.host.values():
            pinned.free()


class TensorRTBackend(Backend):
    """Runs a pconv TensorRT engine (``.engine``/``.plan`` plus its ``.json`` sidecar).

    ``run(image, mask)`` takes host numpy NCHW batches and returns host arrays; objects with
    ``__cuda_array_interface__`` are accepted too. ``run_device(image, mask, stream=None)`` keeps
    everything on the GPU: the inputs' memory is bound zero-copy and the outputs are returned as
    :class:`DeviceArray`. With ``use_cuda_graph=True`` the host path captures the engine launch in
    a CUDA graph and replays it while the batch shape stays the same (ideal for fixed shapes).
    """

    name = "tensorrt"
    supports_device = True

    def __init__(
        self,
        engine_path: str | Path,
        device: int = 0,
        plugin_library: str | Path | None = None,
        use_cuda_graph: bool = False,
    ) -> None:
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise ModelLoadError(f"engine file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise ModelLoadError(f"engine file is empty: {self.path} (an interrupted build or copy?)")
        self.sidecar = read_sidecar(self.path)
        self.info: ModelInfo = model_info_from_sidecar(self.sidecar, self.path.name)
        self.device = int(device)
        self.use_cuda_graph = bool(use_cuda_graph)
        self._lock = threading.Lock()
        self._buffers: OrderedDict[Shape3, _ShapeBuffers] = OrderedDict()
        self._graph: tuple[Shape3, Any, Any] | None = None  # (key, graph, graph_exec)
        self._capture_next: Shape3 | None = None
        self._stream: Any = None
        self._closed = False

        self._trt = import_tensorrt()
        self.cuda = Cuda()
        self.cuda.set_device(self.device)
        self.gpu_name, self.compute_capability = self.cuda.device_properties(self.device)
        check_compatibility(
            self.sidecar,
            str(self._trt.__version__),
            self.compute_capability,
            self.gpu_name,
            source=self.path.name,
        )
        self.plugin_library = self._load_plugin(plugin_library)
        self._trt_logger = make_trt_logger(self._trt, logger)
        try:
            self._runtime: trt.Runtime = self._trt.Runtime(self._trt_logger)
        except Exception as exc:  # pybind raises when createInferRuntime returns null
            raise CudaError(
                f"TensorRT could not start on GPU {self.device} ({exc}{log_tail(self._trt_logger)}): "
                "check the NVIDIA driver (`nvidia-smi`) and that TensorRT matches the installed CUDA"
            ) from exc
        if self.sidecar.version_compatible:
            # A version-compatible plan carries its lean runtime (and maybe the plugin): host code.
            self._runtime.engine_host_code_allowed = True
        engine: trt.ICudaEngine | None = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise EngineIncompatibleError(
                f"TensorRT {self._trt.__version__} could not deserialise {self.path.name}"
                f"{log_tail(self._trt_logger)}: rebuild it here with `pconv build`"
            )
        self.engine: trt.ICudaEngine = engine
        self._io_dtypes = self._check_io()
        context: trt.IExecutionContext | None = self.engine.create_execution_context()
        if context is None:
            raise CudaError(f"could not create a TensorRT execution context{log_tail(self._trt_logger)}")
        self.context: trt.IExecutionContext = context
        self._stream = self.cuda.create_stream()
        self._stream_int = stream_handle(self._stream)

    # setup -------------------------------------------------------------------------------------
    def _load_plugin(self, plugin_library: str | Path | None) -> Path | None:
        if not self.sidecar.uses_plugin:
            return None
        if self.sidecar.plugin_serialized and plugin_library is None:
            return None  # the version-compatible plan carries the library itself
        library = Path(plugin_library) if plugin_library is not None else find_library()
        built_with = self.sidecar.extra.get("plugin_library_path")
        if library is None and isinstance(built_with, str) and Path(built_with).is_file():
            library = Path(built_with)  # the library the engine was built with, still in place
        if library is None:
            raise PluginLibraryError(
                f"{self.path.name} uses the pconv TensorRT plugin "
                f"({len(self.sidecar.plugin_layers)} layers) but the plugin library was not found: "
                "build it with `pconv build-plugin`, or pass plugin_library=... "
                f"(built with {self.sidecar.plugin_library or 'a libpconv_plugin .so'})"
            )
        load_plugin_library(self._trt, library)
        return library

    def _check_io(self) -> dict[str, np.dtype[Any]]:
        trt_mod = self._trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        expected = set(INPUT_NAMES) | set(OUTPUT_NAMES)
        if not expected.issubset(names):
            raise ModelLoadError(
                f"{self.path.name} has I/O tensors {names}, not pconv's {sorted(expected)}; rebuild "
                "it from a pconv ONNX model"
            )
        dtypes: dict[str, np.dtype[Any]] = {}
        for name in names:
            mode = self.engine.get_tensor_mode(name)
            is_input = mode == trt_mod.TensorIOMode.INPUT
            if is_input != (name in INPUT_NAMES) and name in expected:
                raise ModelLoadError(f"{self.path.name}: tensor {name!r} has the wrong direction")
            dtypes[name] = np.dtype(trt_mod.nptype(self.engine.get_tensor_dtype(name)))
        return dtypes

    # public API --------------------------------------------------------------------------------
    def run(self, image: Any, mask: Any) -> dict[str, np.ndarray]:
        """Run a padded NCHW batch; returns host ``{"output", "composite"}`` arrays."""
        if hasattr(image, "__cuda_array_interface__") or hasattr(mask, "__cuda_array_interface__"):
            device_out = self.run_device(image, mask)
            return {name: arr.to_host() for name, arr in device_out.items()}
        image_np = np.ascontiguousarray(image, dtype=self._io_dtypes["image"])
        mask_np = np.ascontiguousarray(mask, dtype=self._io_dtypes["mask"])
        key = self._check_shapes(image_np.shape, mask_np.shape)
        with self._lock:
            self._ensure_open()
            self.cuda.set_device(self.device)
            bufs = self._buffers_for(key)
            stream = self._stream_int
            for name, array in (("image", image_np), ("mask", mask_np)):
                np.copyto(bufs.host[name].array, array)
                self.cuda.copy_async(
                    address(bufs.device[name]), address(bufs.host[name]), array.nbytes, True, stream
                )
            self._bind(key, {n: address(m) for n, m in bufs.device.items()})
            self._enqueue(key)
            for name in OUTPUT_NAMES:
                self.cuda.copy_async(
                    address(bufs.host[name]),
                    address(bufs.device[name]),
                    bufs.host[name].nbytes,
                    False,
                    stream,
                )
            self.cuda.synchronize(self._stream)
            return {name: bufs.host[name].array.copy() for name in OUTPUT_NAMES}

    def run_device(
        self, image: Any, mask: Any, stream: Any = None, out: Mapping[str, Any] | None = None
    ) -> dict[str, DeviceArray]:
        """Zero-copy run on GPU-resident inputs (anything with ``__cuda_array_interface__``).

        With ``stream`` (an int handle, cuda-python, torch or CuPy stream) the work is enqueued on
        it and the call returns at once; the results are ready in that stream's order. Without,
        pconv's own stream is used and the call waits. ``out`` may give preallocated device
        arrays for ``"output"``/``"composite"``; otherwise new ones are allocated.
        """
        views = {"image": cuda_array_view(image, "image"), "mask": cuda_array_view(mask, "mask")}
        for name, view in views.items():
            if view.dtype != self._io_dtypes[name]:
                raise DeviceInputError(
                    f"{name}: dtype {view.dtype} but the engine takes {self._io_dtypes[name]}; convert "
                    "it on the GPU first (e.g. tensor.to(torch.float16) / array.astype(...))"
                )
        key = self._check_shapes(views["image"].shape, views["mask"].shape)
        with self._lock:
            self._ensure_open()
            self.cuda.set_device(self.device)
            for name, view in views.items():
                owner = self.cuda.pointer_device(view.ptr)
                if owner != self.device:
                    where = "host memory" if owner is None else f"GPU {owner}"
                    raise DeviceInputError(
                        f"{name} lives in {where}, but this backend runs on GPU {self.device}; move it "
                        "there first (or use run() for host arrays)"
                    )
            self._drop_graph()  # rebinding the context invalidates a captured graph
            self._capture_next = None
            self._set_input_shapes(key)
            exec_stream = stream_handle(stream) if stream is not None else self._stream_int
            results: dict[str, DeviceArray] = {}
            for name in OUTPUT_NAMES:
                shape = dims_tuple(self.context.get_tensor_shape(name))
                dtype = self._io_dtypes[name]
                given = None if out is None else out.get(name)
                if given is not None:
                    view = cuda_array_view(given, f"out[{name!r}]")
                    if view.shape != shape or view.dtype != dtype:
                        raise DeviceInputError(
                            f"out[{name!r}] is {view.shape} {view.dtype}; the engine writes {shape} {dtype}"
                        )
                    results[name] = DeviceArray(view.ptr, shape, dtype, owner=given, cuda=self.cuda)
                else:
                    mem = DeviceMemory(self.cuda, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
                    results[name] = DeviceArray(address(mem), shape, dtype, owner=mem, cuda=self.cuda)
            addresses = {name: view.ptr for name, view in views.items()}
            addresses.update({name: arr.ptr for name, arr in results.items()})
            self._bind(key, addresses, set_shapes=False)
            for view in views.values():  # CAI v3: wait for the producer's stream
                if view.stream is not None and view.stream != exec_stream:
                    self.cuda.synchronize(view.stream)
            if not self.context.execute_async_v3(exec_stream):
                raise CudaError(f"TensorRT execution failed{log_tail(self._trt_logger)}")
            if stream is None:
                self.cuda.synchronize(self._stream)
            else:
                for arr in results.values():
                    arr.stream = exec_stream
            return results

    def close(self) -> None:
        """Free every buffer, graph and stream; the backend cannot run afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):
                if self._stream is not None:
                    self.cuda.synchronize(self._stream)
            self._drop_graph()
            for bufs in self._buffers.values():
                bufs.free()
            self._buffers.clear()
            if self._stream is not None:
                with contextlib.suppress(Exception):
                    self.cuda.destroy_stream(self._stream)
                self._stream = None
            # Release TensorRT objects in dependency order: context, then engine.
            self.__dict__.pop("context", None)
            self.__dict__.pop("engine", None)

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()

    # internals ---------------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if self._closed:
            raise PconvError("this TensorRT backend was closed; open a new one")

    def _check_shapes(self, image_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> Shape3:
        if len(image_shape) != 4 or image_shape[1] != INPUT_CHANNELS["image"]:
            raise InputError(f"image batch must be N x 3 x H x W, got shape {tuple(image_shape)}")
        n, _, h, w = image_shape
        if tuple(mask_shape) != (n, 1, h, w):
            raise InputError(
                f"mask batch must be {n} x 1 x {h} x {w} to match the image, got {tuple(mask_shape)}"
            )
        check_batch_shape(self.info, n, h, w, source=self.path.name)
        return (int(n), int(h), int(w))

    def _set_input_shapes(self, key: Shape3) -> None:
        n, h, w = key
        for name in INPUT_NAMES:
            if not self.context.set_input_shape(name, (n, INPUT_CHANNELS[name], h, w)):
                raise InputError(
                    f"TensorRT rejected the input shape {n}x{h}x{w} for {name}{log_tail(self._trt_logger)}"
                )

    def _buffers_for(self, key: Shape3) -> _ShapeBuffers:
        bufs = self._buffers.get(key)
        if bufs is not None:
            self._buffers.move_to_end(key)
            return bufs
        self._set_input_shapes(key)
        shapes: dict[str, tuple[int, ...]] = {}
        for name in (*INPUT_NAMES, *OUTPUT_NAMES):
            shape = dims_tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise CudaError(f"TensorRT could not infer the shape of {name} for batch {key}")
            shapes[name] = shape
        device = {
            name: DeviceMemory(self.cuda, int(np.prod(s, dtype=np.int64)) * self._io_dtypes[name].itemsize)
            for name, s in shapes.items()
        }
        host = {name: PinnedMemory(self.cuda, s, self._io_dtypes[name]) for name, s in shapes.items()}
        bufs = _ShapeBuffers(key=key, shapes=shapes, device=device, host=host)
        self._buffers[key] = bufs
        while len(self._buffers) > MAX_CACHED_SHAPES:
            old_key, old = self._buffers.popitem(last=False)
            if self._graph is not None and self._graph[0] == old_key:
                self._drop_graph()
            old.free()
        return bufs

    def _bind(self, key: Shape3, addresses: Mapping[str, int], *, set_shapes: bool = True) -> None:
        if set_shapes:
            self._set_input_shapes(key)
        for name, ptr in addresses.items():
            if not self.context.set_tensor_address(name, ptr):
                raise CudaError(f"TensorRT rejected the address of {name}{log_tail(self._trt_logger)}")

    def _enqueue(self, key: Shape3) -> None:
        """Launch the engine on our stream, through a CUDA graph when enabled and shape-stable."""
        if not self.use_cuda_graph:
            self._execute()
            return
        if self._graph is not None and self._graph[0] == key:
            self.cuda.launch(self._graph[2], self._stream)
            return
        self._drop_graph()  # a graph is only valid for the context state it was captured with
        if self._capture_next != key:
            # First call at this shape runs normally: TensorRT finishes shape-dependent setup here.
            self._capture_next = key
            self._execute()
            return
        self._capture_next = None
        try:
            self.cuda.begin_capture(self._stream)
            try:
                ok = self.context.execute_async_v3(self._stream_int)
            finally:
                graph = self.cuda.end_capture(self._stream)
            if not ok:
                raise CudaError("execute_async_v3 failed during CUDA graph capture")
            graph_exec = self.cuda.instantiate(graph)
        except CudaError as exc:
            logger.warning("CUDA graph capture failed (%s); running without graphs", exc)
            self.use_cuda_graph = False
            self._execute()
            return
        self._graph = (key, graph, graph_exec)
        self.cuda.launch(graph_exec, self._stream)

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self._stream_int):
            raise CudaError(f"TensorRT execution failed{log_tail(self._trt_logger)}")

    def _drop_graph(self) -> None:
        if self._graph is not None:
            _, graph, graph_exec = self._graph
            self._graph = None
            with contextlib.suppress(Exception):
                self.cuda.destroy_graph(graph, graph_exec)


def dims_tuple(dims: Any) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple of ints (``Dims`` is indexable but not typed as iterable)."""
    return tuple(int(dims[i]) for i in range(len(dims)))
