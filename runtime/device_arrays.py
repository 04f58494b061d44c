"""GPU memory the runtime hands out or takes in: ``__cuda_array_interface__`` views and owned blocks.

:func:`cuda_array_view` validates an input from any CUDA library (CuPy, PyTorch, Numba, PyCUDA)
before its pointer is bound; :class:`DeviceArray` is what a zero-copy run returns (any of those
libraries wraps it without a copy); :class:`DeviceMemory` and :class:`PinnedMemory` are owned
``cudaMalloc`` / page-locked blocks, freed when the last reference goes. Needs numpy only: the
CUDA calls go through the :class:`pconv.trt.cuda.Cuda` object the caller passes.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pconv.errors import DeviceInputError, PconvError
from pconv.trt.cuda import Cuda


def stream_handle(stream: Any) -> int:
    """The raw ``cudaStream_t`` value of an int, cuda-python, CuPy or PyTorch stream object."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):  # torch.cuda.Stream, cupy Stream, generic
        value = getattr(stream, attr, None)
        if isinstance(value, int):
            return value
    try:
        return int(stream)  # cuda-python cudaStream_t / CUstream
    except (TypeError, ValueError) as exc:
        raise DeviceInputError(
            f"cannot use {type(stream).__name__} as a CUDA stream: pass an int handle, a cuda-python "
            "stream, torch.cuda.Stream or cupy.cuda.Stream"
        ) from exc


@dataclass(frozen=True)
class CudaArrayView:
    """A validated ``__cuda_array_interface__``: a C-contiguous device buffer we can bind as is."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    stream: int | None  # producer stream to wait for (CAI v3), or None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def cuda_array_view(obj: Any, name: str = "array") -> CudaArrayView:
    """Validate ``obj.__cuda_array_interface__`` (CuPy, PyTorch, Numba, PyCUDA GPUArray, ...).

    Only C-contiguous arrays without a mask are accepted, since TensorRT reads dense NCHW memory;
    anything else gets a :class:`DeviceInputError` saying how to make it acceptable.
    """
    try:
        cai = obj.__cuda_array_interface__
    except AttributeError as exc:
        raise DeviceInputError(
            f"{name}: {type(obj).__name__} has no __cuda_array_interface__; pass a CuPy array, a "
            "CUDA torch.Tensor, a Numba device array or a PyCUDA GPUArray (or use run() for numpy)"
        ) from exc
    if not isinstance(cai, Mapping):
        raise DeviceInputError(f"{name}: __cuda_array_interface__ must be a dict, got {type(cai).__name__}")
    missing = [k for k in ("shape", "typestr", "data", "version") if k not in cai]
    if missing:
        raise DeviceInputError(f"{name}: __cuda_array_interface__ lacks {', '.join(missing)}")
    try:
        shape = tuple(int(s) for s in cai["shape"])
        dtype = np.dtype(cai["typestr"])
        data = cai["data"]
        ptr = int(data[0])
        readonly = bool(data[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise DeviceInputError(f"{name}: malformed __cuda_array_interface__ ({exc})") from exc
    del readonly  # inputs are only read
    if cai.get("mask") is not None:
        raise DeviceInputError(f"{name}: masked device arrays are not supported")
    if dtype.byteorder == ">":
        raise DeviceInputError(f"{name}: big-endian data ({cai['typestr']}) is not supported")
    size = int(np.prod(shape, dtype=np.int64))
    if size and ptr == 0:
        raise DeviceInputError(f"{name}: the device pointer is NULL")
    strides = cai.get("strides")
    if strides is not None and size:
        expected = []
        step = dtype.itemsize
        for extent in reversed(shape):
            expected.append(step)
            step *= extent
        expected.reverse()
        # Strides of length-1 axes are irrelevant (PyTorch reports arbitrary ones there).
        if any(int(s) != e for s, e, n in zip(strides, expected, shape) if n != 1):
            raise DeviceInputError(
                f"{name}: the device array is not C-contiguous (strides {tuple(strides)}, expected "
                f"{tuple(expected)}); call .contiguous() (torch) or cupy.ascontiguousarray() first"
            )
    stream = cai.get("stream")
    if stream is not None:
        stream = int(stream)
        if stream == 0:
            raise DeviceInputError(f"{name}: __cuda_array_interface__ stream 0 is disallowed by the protocol")
    return CudaArrayView(ptr=ptr, shape=shape, dtype=dtype, stream=stream)


class DeviceMemory:
    """An owned ``cudaMalloc`` block, freed when the last reference goes."""

    def __init__(self, cuda: Cuda, nbytes: int) -> None:
        self.cuda = cuda
        self.nbytes = nbytes
        self.ptr: int | None = cuda.malloc(nbytes)

    def free(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            with contextlib.suppress(Exception):  # interpreter shutdown, context already gone
                self.cuda.free(ptr)

    def __del__(self) -> None:
        self.free()


class PinnedMemory:
    """An owned page-locked host block viewed as a numpy array (fast, async-capable copies)."""

    def __init__(self, cuda: Cuda, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.cuda = cuda
        self.nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.ptr: int | None = cuda.malloc_host(self.nbytes)
        raw = (ctypes.c_ubyte * max(self.nbytes, 1)).from_address(self.ptr)
        self.array: np.ndarray = np.ctypeslib.as_array(raw)[: self.nbytes].view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            self.array = np.empty(0, dtype=self.array.dtype)
            with contextlib.suppress(Exception):
                self.cuda.free_host(ptr)

    def __del__(self) -> None:
        self.free()


class DeviceArray:
    """A GPU result exposing ``__cuda_array_interface__`` (v3), so any CUDA library can wrap it.

    ``cupy.asarray(a)``, ``torch.as_tensor(a, device="cuda")``, ``numba.cuda.as_cuda_array(a)``
    and PyCUDA (``GPUArray(a.shape, a.dtype, gpudata=a.ptr)``) all take it without a copy; pconv
    does not depend on any of them. ``to_host()`` copies it to numpy.
    """

    def __init__(
        self,
        ptr: int,
        shape: tuple[int, ...],
        dtype: np.dtype[Any] | type,
        *,
        owner: Any = None,
        stream: int | None = None,
        cuda: Cuda | None = None,
    ) -> None:
        self.ptr = int(ptr)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.stream = stream
        self._owner = owner  # keeps the memory alive as long as this array
        self._cuda = cuda

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr, False),
            "version": 3,
            "strides": None,
            "stream": self.stream,
        }

    def to_host(self) -> np.ndarray:
        """Copy to a new numpy array (waiting for the stream that produced it)."""
        cuda = self._cuda or Cuda()
        if self.stream is not None:
            cuda.synchronize(self.stream)
        out = np.empty(self.shape, dtype=self.dtype)
        if out.nbytes:
            cuda.copy_device_to_host(out.ctypes.data, self.ptr, out.nbytes)
        return out

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, ptr=0x{self.ptr:x})"


def address(mem: DeviceMemory | PinnedMemory) -> int:
    """The pointer of an owned block, refusing one that was freed (use after close)."""
    if mem.ptr is None:
        raise PconvError("buffer used after it was freed (the backend was closed)")
    return mem.ptr
