"""Triton backend: ``Inpainter("grpc://host:8001/pconv")`` runs its network tiles on a Triton server.

Only the network call moves to the server. Planning (``full``/``crop``/``auto``), batching tiles
by size and the bit-exact composite stay in :class:`pconv.runtime.Inpainter` on the client, while
Triton's dynamic batcher merges equal-shape requests across clients. The model on the server is
one that ``pconv serve`` or ``pconv triton-repo`` wrote: inputs ``image`` (N,3,H,W) and ``mask``
(N,1,H,W, 1 = valid), output ``output``, and pconv's ONNX metadata copied into the model config's
``parameters`` (size multiple, mask convention, model config), which this backend checks the same
way the file backends check the ONNX metadata.

``http://host:8000/MODEL`` works the same over HTTP. Query options: ``?timeout=SECONDS`` (per
request, default 60), ``&retries=N`` (retries on ``UNAVAILABLE`` / connection errors, default 3,
with exponential backoff; a full queue answers ``UNAVAILABLE`` too, so a busy server is retried
and then reported as :class:`ServerBusyError`), ``&shm=system`` (below). Needs ``tritonclient``
(``pip install 'pconv[serve]'``); numpy and tritonclient only, never torch.

``?shm=system`` (opt-in, gRPC and HTTP): the tensors go through POSIX shared memory instead of the
socket, for a server **on this machine** (sharing ``/dev/shm``; in a container, ``--ipc=host``). The
client creates and registers one set of regions (``image``, ``mask`` in, ``output`` out) per batch
shape, keeps the last :data:`SHM_SHAPES` shapes registered for reuse, writes the inputs there and
returns a copy of the output (bit-identical to the plain transport). Region names carry the pid, the
backend's id and a random tag, so concurrent clients never share one. :meth:`TritonBackend.close`
unregisters and unlinks them all (also when opening fails; a backend never closed is unlinked when
it is garbage-collected). Registering uses Triton's shared-memory API, which ``pconv serve
--admin-token`` restricts: pass the key as ``TritonBackend(url, headers={HEADER: TOKEN})`` (``HEADER``
is :data:`pconv.contract.ADMIN_GRPC_HEADER` over gRPC, :data:`pconv.contract.ADMIN_HEADER` over HTTP;
the headers go with every call) and wrap it with ``Inpainter.from_backend``. Calls on one backend
are serialised in this mode (they share the regions), as ``Inpainter`` serialises them anyway.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import threading
import time
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pconv.contract import (
    ADMIN_GRPC_HEADER,
    ADMIN_HEADER,
    INPUT_CHANNELS,
    INPUT_NAMES,
    OUTPUT_NAMES,
    Shape3,
    parse_nhw,
)
from pconv.errors import InputError, MissingDependencyError, ModelLoadError, PconvError
from pconv.runtime.backend import Backend, ModelInfo, model_info_from_metadata

DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 3
#: Values of the URL's ``shm=`` option (absent: tensors over the socket).
SHM_MODES = ("system",)
#: Batch shapes whose shared-memory regions a backend keeps registered (the oldest is released first).
SHM_SHAPES = 4
#: Triton data types of the I/O tensors -> numpy.
TRITON_DTYPES = {"TYPE_FP32": np.dtype(np.float32), "TYPE_FP16": np.dtype(np.float16)}
_WIRE_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16"}
_UNBOUNDED = 1 << 30
#: Config parameters holding the model's shape limits as NxHxW (written by ``pconv triton-repo``).
P_MIN_SHAPE, P_MAX_SHAPE, P_FIXED_SHAPE = "pconv_min_shape", "pconv_max_shape", "pconv_fixed_shape"


class ServerUnavailableError(ModelLoadError):
    """The Triton server cannot be reached (or stayed unavailable through the retries)."""


class ServerBusyError(PconvError):
    """The server's queue stayed full through the retries (``--max-queue``): back-pressure, not a fault."""


@dataclass(frozen=True)
class ServerAddress:
    """A parsed ``grpc://host:port/MODEL[/VERSION][?timeout=S&retries=N&shm=system]``."""

    protocol: str  # "grpc" or "http"
    host: str
    port: int
    model: str
    version: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    shm: str = ""  # "" (tensors over the socket) or one of SHM_MODES

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        version = f"/{self.version}" if self.version else ""
        return f"{self.protocol}://{self.endpoint}/{self.model}{version}"


def parse_address(url: str) -> ServerAddress:
    """Parse a model URL, or raise :class:`ModelLoadError` saying what the form is."""
    form = "grpc://HOST:PORT/MODEL or http://HOST:PORT/MODEL (e.g. grpc://127.0.0.1:8001/pconv)"
    parts = urllib.parse.urlsplit(url)
    protocol = parts.scheme.lower()
    path = [p for p in parts.path.split("/") if p]
    if protocol not in DEFAULT_PORTS or not parts.hostname or not 1 <= len(path) <= 2:
        raise ModelLoadError(f"cannot read the server model address {url!r}: use {form}")
    try:
        port = parts.port or DEFAULT_PORTS[protocol]
        query = dict(urllib.parse.parse_qsl(parts.query, strict_parsing=bool(parts.query)))
        unknown = set(query) - {"timeout", "retries", "shm"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; known: timeout, retries, shm")
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT_S))
        retries = int(query.get("retries", DEFAULT_RETRIES))
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be > 0 and retries >= 0")
        shm = query.get("shm", "")
        if shm and shm not in SHM_MODES:
            raise ValueError(
                f"shm={shm!r} is not a transport: use shm=system (POSIX shared memory, the server on "
                "this machine) or leave it out"
            )
    except ValueError as exc:
        raise ModelLoadError(f"cannot read the server model address {url!r} ({exc}): use {form}") from exc
    version = path[1] if len(path) > 1 else ""
    return ServerAddress(protocol, parts.hostname, port, path[0], version, timeout, retries, shm)


def import_client(protocol: str) -> Any:
    """``tritonclient.grpc`` or ``tritonclient.http``, or a one-line install hint."""
    try:
        return importlib.import_module(f"tritonclient.{protocol}")
    except ImportError as exc:
        raise MissingDependencyError(
            f"tritonclient ({protocol}) is not installed: run `pip install 'pconv[serve]'` ({exc})"
        ) from exc


def _is_unavailable(exc: Exception) -> bool:
    """A transient failure worth retrying: gRPC UNAVAILABLE, HTTP 503, or a refused connection."""
    status = str(getattr(exc, "status", lambda: "")() or "")
    if "restricted" in str(exc).lower():  # a restricted API answers UNAVAILABLE too: not transient
        return False
    if "UNAVAILABLE" in status.upper() or status == "503":
        return True
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    return "unavailable" in str(exc).lower() or "connection refused" in str(exc).lower()


def _is_timeout(exc: Exception) -> bool:
    """The client's own deadline ran out (gRPC DEADLINE_EXCEEDED, an HTTP read timeout)."""
    status = str(getattr(exc, "status", lambda: "")() or "").upper()
    text = str(exc).lower()
    return (
        "DEADLINE_EXCEEDED" in status
        or isinstance(exc, TimeoutError)
        or any(w in text for w in ("deadline exceeded", "timed out", "timeout"))
    )


def _one_line(exc: Exception) -> str:
    text = getattr(exc, "message", lambda: None)() if callable(getattr(exc, "message", None)) else None
    return " ".join(str(text or exc).split()) or type(exc).__name__


def shape_limits(params: Mapping[str, str], max_batch_size: int = 0) -> dict[str, Shape3 | None]:
    """``min_shape``/``max_shape``/``fixed_shape`` for ModelInfo from a config's parameters.

    One reader for the client (:class:`TritonBackend`) and the ensemble's pre step, so both pad to
    what the network takes; the batch is capped at ``max_batch_size`` (when > 0, Triton's limit).
    Parameters absent (an older repository): 1 to unbounded.
    """

    def read(key: str) -> Shape3 | None:
        text = params.get(key, "")
        try:
            return parse_nhw(text, key) if text else None
        except InputError as exc:
            raise ModelLoadError(f"model config parameter {exc}: regenerate the repository") from exc

    fixed = read(P_FIXED_SHAPE)
    if fixed is not None:
        return {"min_shape": None, "max_shape": None, "fixed_shape": fixed}
    lo = read(P_MIN_SHAPE) or (1, 1, 1)
    hi = read(P_MAX_SHAPE) or (_UNBOUNDED, _UNBOUNDED, _UNBOUNDED)
    if max_batch_size > 0:
        hi = (min(hi[0], max_batch_size), hi[1], hi[2])
    return {"min_shape": lo, "max_shape": hi, "fixed_shape": None}


@dataclass(frozen=True)
class _Region:
    """One system shared-memory region: ``name`` on the server, ``key`` in ``/dev/shm``."""

    name: str
    key: str
    byte_size: int
    handle: Any  # tritonclient.utils.shared_memory.SharedMemoryRegion


def _destroy_regions(shm: Any, regions: OrderedDict[Any, tuple[_Region, ...]]) -> None:
    """Unlink every region still listed (close() unregisters them first; a garbage-collected backend
    only gets this, so its ``/dev/shm`` entries go even though the server may still map them)."""
    while regions:
        _, group = regions.popitem(last=False)
        for region in group:
            with contextlib.suppress(Exception):
                shm.destroy_shared_memory_region(region.handle)


class TritonBackend(Backend):
    """Runs a pconv model on a Triton server (implements :class:`pconv.runtime.backend.Backend`).

    ``run`` returns ``{"output": ...}`` only: the composite is made by the client from its own pixels,
    so the server's ``composite`` tensor is never transferred.
    """

    name = "triton"

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.address = parse_address(url)
        self.headers = dict(headers or {})
        self._module = import_client(self.address.protocol)
        self.providers: tuple[str, ...] = (f"triton:{self.address.protocol}",)
        self.client = self._open_client()
        self._shm: Any = None  # tritonclient.utils.shared_memory with ?shm=system
        self._regions: OrderedDict[tuple[tuple[int, ...], ...], tuple[_Region, ...]] = OrderedDict()
        self._lock = threading.Lock()
        try:
            self._wait_for_server()
            config = self._call(self.client.get_model_config, self.address.model, self.address.version)
            self.model_config: dict[str, Any] = self._as_dict(config)
            self.info: ModelInfo = self._check_contract(self.model_config)
            if self.address.shm:
                self._open_shared_memory()
        except self._module.InferenceServerException as exc:  # not transient: _call retried those
            self.close()
            if _is_timeout(exc):
                raise self._timeout_error(exc) from exc
            raise ModelLoadError(
                f"the Triton server at {self.address.endpoint} refused model {self.address.model!r} "
                f"({_one_line(exc)})"
            ) from exc
        except BaseException:
            self.close()  # no half-open channel left behind
            raise
        self.output_names = [OUTPUT_NAMES[0]]

    # -- set-up -------------------------------------------------------------------------------------
    def _open_client(self) -> Any:
        timeout = self.address.timeout
        if self.address.protocol == "http":
            return self._module.InferenceServerClient(
                self.address.endpoint, connection_timeout=timeout, network_timeout=timeout
            )
        return self._module.InferenceServerClient(self.address.endpoint)

    def _wait_for_server(self) -> None:
        live = self._call(self.client.is_server_live)
        if not live:
            raise ServerUnavailableError(f"the Triton server at {self.address.endpoint} is not live")
        model, version = self.address.model, self.address.version
        if not self._call(self.client.is_model_ready, model, version):
            names = self._model_names()
            raise ModelLoadError(
                f"the Triton server at {self.address.endpoint} has no ready model {model!r} "
                f"(ready models: {', '.join(names) or 'none'}); check the name in the URL or wait for "
                "it to load (`pconv serve` prints the URLs of its models)"
            )

    def _model_names(self) -> list[str]:
        try:
            index = self._as_dict(self.client.get_model_repository_index(headers=self.headers or None))
        except Exception:  # the index is only for the message; a restricted API is fine
            return []
        models = index.get("models", index) if isinstance(index, dict) else index
        return sorted(str(m.get("name")) for m in models if m.get("state", "READY") == "READY")

    def _as_dict(self, reply: Any) -> Any:
        if self.address.protocol == "http":
            return reply
        from google.protobuf.json_format import MessageToDict

        data = MessageToDict(reply, preserving_proto_field_name=True)
        return data.get("config", data)

    def _check_contract(self, config: dict[str, Any]) -> ModelInfo:
        where = str(self.address)
        inputs = {i["name"]: i for i in config.get("input", [])}
        outputs = {o["name"]: o for o in config.get("output", [])}
        if set(inputs) != set(INPUT_NAMES) or OUTPUT_NAMES[0] not in outputs:
            raise ModelLoadError(
                f"{where}: inputs {sorted(inputs)} / outputs {sorted(outputs)} are not the pconv contract "
                f"(inputs {', '.join(INPUT_NAMES)}; output {OUTPUT_NAMES[0]}): serve a repository written "
                "by `pconv serve` / `pconv triton-repo` (the ensemble takes uint8 images instead: call it "
                "with tritonclient)"
            )
        dtype = TRITON_DTYPES.get(str(inputs[INPUT_NAMES[0]].get("data_type")))
        if dtype is None:
            raise ModelLoadError(f"{where}: unsupported data type {inputs['image'].get('data_type')}")
        batched = int(config.get("max_batch_size", 0))
        for name, spec in inputs.items():
            dims = [int(d) for d in spec.get("dims", [])]
            channels = dims[0] if batched else (dims[1] if len(dims) > 1 else -1)
            if len(dims) != (3 if batched else 4) or channels != INPUT_CHANNELS[name]:
                raise ModelLoadError(
                    f"{where}: input {name} has dims {dims} (max_batch_size {batched}); expected "
                    f"[{INPUT_CHANNELS[name]}, -1, -1] with batching: regenerate the repository"
                )
        params = {k: v.get("string_value", "") for k, v in dict(config.get("parameters", {})).items()}
        return model_info_from_metadata(params, where, dtype, **shape_limits(params, batched))

    # -- system shared memory (?shm=system) ----------------------------------------------------------
    def _open_shared_memory(self) -> None:
        """Load the helpers and register (then drop) a small probe region, so a server that cannot map
        this machine's ``/dev/shm`` or refuses the API fails here, at open, in one line."""
        try:
            self._shm = importlib.import_module("tritonclient.utils.shared_memory")
        except ImportError as exc:
            raise MissingDependencyError(
                f"tritonclient's shared-memory helpers are missing: run `pip install 'pconv[serve]'` ({exc})"
            ) from exc
        self._finalizer = weakref.finalize(self, _destroy_regions, self._shm, self._regions)
        # unique per process, per backend and per open: no two clients (or a stale region) share a name
        self._shm_prefix = f"pconv-{os.getpid()}-{id(self):x}-{secrets.token_hex(4)}"
        self._shm_count = 0
        self._release(self._create_regions(("probe",), (64,)))

    def _create_regions(self, tensors: tuple[str, ...], sizes: tuple[int, ...]) -> tuple[_Region, ...]:
        """Create and register one region per tensor; on any failure release what was made, then
        raise a one-line error naming the fix."""
        made: list[_Region] = []
        registered: list[_Region] = []
        try:
            for tensor, size in zip(tensors, sizes):
                self._shm_count += 1
                name = f"{self._shm_prefix}-{self._shm_count}-{tensor}"
                try:
                    handle = self._shm.create_shared_memory_region(name, "/" + name, size, create_only=True)
                except self._shm.SharedMemoryException as exc:
                    raise ModelLoadError(
                        f"cannot create a {size}-byte shared-memory region in /dev/shm "
                        f"({_one_line(exc.__cause__ or exc)}): free space there, or drop ?shm=system"
                    ) from exc
                region = _Region(name, "/" + name, size, handle)
                made.append(region)
                self._call(self.client.register_system_shared_memory, name, region.key, size)
                registered.append(region)
        except self._module.InferenceServerException as exc:
            self._release(tuple(made), registered=tuple(registered))
            raise self._shm_error(exc) from exc
        except BaseException:
            self._release(tuple(made), registered=tuple(registered))
            raise
        return tuple(made)

    def _shm_error(self, exc: Exception) -> ModelLoadError:
        where, text = self.address.endpoint, _one_line(exc)
        if "restricted" in text.lower():
            header = ADMIN_GRPC_HEADER if self.address.protocol == "grpc" else ADMIN_HEADER
            given = " (the key in headers= was refused: check the token)" if self.headers else ""
            return ModelLoadError(
                f"the Triton server at {where} restricts its shared-memory API ({text}){given}: it was "
                f"started with `pconv serve --admin-token`; pass the token, TritonBackend(url, headers="
                f"{{'{header}': TOKEN}}) wrapped with Inpainter.from_backend(...), or drop ?shm=system"
            )
        return ModelLoadError(
            f"the Triton server at {where} could not map this client's shared memory ({text}): "
            "?shm=system needs the server on this machine, sharing /dev/shm (a container: --ipc=host); "
            "for a server on another host drop ?shm=system"
        )

    def _release(self, regions: tuple[_Region, ...], registered: tuple[_Region, ...] | None = None) -> None:
        """Unregister ``registered`` (default: all of ``regions``) on the server, then unlink ``regions``."""
        for region in regions if registered is None else registered:
            with contextlib.suppress(Exception):  # a dead server: nothing left to unregister there
                self.client.unregister_system_shared_memory(region.name, headers=self.headers or None)
        for region in regions:
            with contextlib.suppress(Exception):
                self._shm.destroy_shared_memory_region(region.handle)

    def _regions_for(self, key: tuple[tuple[int, ...], ...], sizes: tuple[int, ...]) -> tuple[_Region, ...]:
        """The regions of one shape set, created on first use; the least recently used set goes when
        more than :data:`SHM_SHAPES` are registered."""
        regions = self._regions.get(key)
        if regions is not None:
            self._regions.move_to_end(key)
            return regions
        while len(self._regions) >= SHM_SHAPES:
            self._release(self._regions.popitem(last=False)[1])
        regions = self._create_regions((*INPUT_NAMES, OUTPUT_NAMES[0]), sizes)
        self._regions[key] = regions
        return regions

    def _run_shared_memory(
        self, image: np.ndarray, mask: np.ndarray, dtype: np.dtype[Any], wire: str
    ) -> np.ndarray:
        out_shape = (image.shape[0], INPUT_CHANNELS[INPUT_NAMES[0]], *image.shape[2:])
        arrays = [np.ascontiguousarray(a, dtype=dtype) for a in (image, mask)]
        sizes = (arrays[0].nbytes, arrays[1].nbytes, int(np.prod(out_shape)) * dtype.itemsize)
        with self._lock:  # calls on one backend share its regions
            regions = self._regions_for((image.shape, mask.shape), sizes)
            inputs = []
            for name, array, region in zip(INPUT_NAMES, arrays, regions):
                self._shm.set_shared_memory_region(region.handle, [array])
                tensor = self._module.InferInput(name, list(array.shape), wire)
                tensor.set_shared_memory(region.name, region.byte_size)
                inputs.append(tensor)
            output = self._module.InferRequestedOutput(OUTPUT_NAMES[0])
            output.set_shared_memory(regions[2].name, regions[2].byte_size)
            result = self._infer(inputs, [output], image.shape)
            shape = tuple(int(d) for d in self._output_shape(result, OUTPUT_NAMES[0]))
            if shape != out_shape:
                raise ModelLoadError(
                    f"{self.address}: output of shape {shape} for a batch of {image.shape} (expected "
                    f"{out_shape}): regenerate the repository with `pconv serve` / `pconv triton-repo`"
                )
            view = self._shm.get_contents_as_numpy(regions[2].handle, dtype, out_shape)
            copy: np.ndarray = view.copy()  # the region is reused by the next call
            del view  # no view may outlive the mapping (destroy closes it)
        return copy

    def _output_shape(self, result: Any, name: str) -> list[int]:
        output = result.get_output(name)
        if output is None:
            raise ModelLoadError(f"{self.address}: the server's answer has no {name!r} output")
        return list(output["shape"] if self.address.protocol == "http" else output.shape)

    # -- calls --------------------------------------------------------------------------------------
    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client, retrying transient failures with backoff; one-line errors otherwise."""
        exceptions = self._module.InferenceServerException
        for attempt in range(self.address.retries + 1):
            try:
                return method(*args, headers=self.headers or None, **kwargs)
            except (exceptions, OSError) as exc:
                if not _is_unavailable(exc):
                    raise
                if attempt == self.address.retries and "queue size" in _one_line(exc):
                    raise ServerBusyError(
                        f"the Triton server at {self.address.endpoint} is full ({_one_line(exc)}; "
                        f"{attempt + 1} attempt(s)): retry later, or serve with more --instances or a larger "
                        "--max-queue (or raise retries= in the model URL)"
                    ) from exc
                if attempt == self.address.retries:
                    raise ServerUnavailableError(
                        f"cannot reach the Triton server at {self.address.endpoint} ({_one_line(exc)}; "
                        f"{attempt + 1} attempt(s)): start it with `pconv serve MODEL` or check the "
                        "address and port (gRPC 8001, HTTP 8000 by default)"
                    ) from exc
                time.sleep(min(2.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")

    def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Run one padded batch on the server: ``image`` (N,3,H,W) in [0, 1], ``mask`` (N,1,H,W)."""
        if image.ndim != 4 or image.shape[1] != 3 or mask.shape != (image.shape[0], 1, *image.shape[2:]):
            raise InputError(
                f"backend inputs must be image (N,3,H,W) and mask (N,1,H,W); got {image.shape}, {mask.shape}"
            )
        dtype = np.dtype(self.info.io_dtype)
        wire = _WIRE_DTYPES[dtype]
        if self.address.shm:
            return {OUTPUT_NAMES[0]: self._run_shared_memory(image, mask, dtype, wire)}
        inputs = []
        for name, array in zip(INPUT_NAMES, (image, mask)):
            tensor = self._module.InferInput(name, list(array.shape), wire)
            tensor.set_data_from_numpy(np.ascontiguousarray(array, dtype=dtype))
            inputs.append(tensor)
        outputs = [self._module.InferRequestedOutput(n) for n in self.output_names]
        result = self._infer(inputs, outputs, image.shape)
        return {n: result.as_numpy(n) for n in self.output_names}

    def _infer(self, inputs: list[Any], outputs: list[Any], shape: tuple[int, ...]) -> Any:
        """One ``infer`` call with retries; a timeout or a refused batch as one line."""
        timeout = {"client_timeout": self.address.timeout} if self.address.protocol == "grpc" else {}
        try:
            return self._call(
                self.client.infer,
                self.address.model,
                inputs,
                model_version=self.address.version,
                outputs=outputs,
                **timeout,
            )
        except ServerBusyError:
            raise
        except self._module.InferenceServerException as exc:
            if _is_timeout(exc):
                raise self._timeout_error(exc) from exc
            raise InputError(
                f"the Triton server rejected a batch of shape {shape} ({_one_line(exc)})"
            ) from exc

    def _timeout_error(self, exc: Exception) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"the Triton server at {self.address.endpoint} did not answer within "
            f"{self.address.timeout:g} s ({_one_line(exc)}): raise the timeout in the model URL "
            f"(?timeout=SECONDS), or serve with more --instances"
        )

    def close(self) -> None:
        """Unregister and unlink the shared-memory regions (``?shm=system``), then close the channel."""
        regions = getattr(self, "_regions", None)
        if regions:  # unregistering needs the client; unlinking happens even without it
            with self._lock:
                while regions:
                    self._release(regions.popitem(last=False)[1])
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()  # nothing left to unlink
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a dead channel is not the user's problem
                client.close()
