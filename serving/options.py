"""The options of ``pconv triton-repo`` and ``pconv serve``, each default stated once.

The fields are :func:`pconv.cliopts.option` fields: the flags (name, default, choices, help) come
from them and the checks run once, in ``__post_init__``, for the CLI and library callers alike.
Stdlib only, so ``pconv --help`` builds these parsers without numpy or tritonclient.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pconv.cliopts import check, option
from pconv.errors import PconvError

#: Backends the network model can run on.
NETWORK_BACKENDS = ("onnxruntime", "tensorrt", "python")
KINDS = ("cpu", "gpu")
#: Model names, before ``name`` replaces the ``pconv`` prefix.
NETWORK, PRE, POST, ENSEMBLE = "", "_pre", "_post", "_ensemble"


class RepositoryError(PconvError):
    """A repository that cannot be written, or a config that Triton would reject."""


class ServeError(PconvError):
    """The server could not start (busy port, model failed to load, timeout) or stopped badly."""


def default_instances() -> int:
    """One instance per usable core (with 1 ONNX Runtime thread each: 2x one 2-thread instance here)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_QUEUE_DELAY_HELP = (
    "how long the dynamic batcher holds a request for others of its shape (microseconds; with 0, "
    "requests that queue while every instance is busy are still batched)"
)


@dataclass(frozen=True)
class RepoOptions:
    """How the repository serves the model (the options of ``triton-repo``; ``serve``'s are below)."""

    name: str = option("pconv", help="model name (the pre/post/ensemble models get suffixes)")
    backend: str = option(
        "auto",
        choices=("auto", *NETWORK_BACKENDS),
        help="Triton backend of the network (auto: onnxruntime for .onnx, tensorrt for engines; python: "
        "pconv's ONNX Runtime session, what pconv serve uses)",
    )
    kind: str = option("cpu", choices=KINDS, help="instance kind")
    instances: int = option(1, at_least=1, help="model instances")
    threads: int = option(1, at_least=1, help="ONNX Runtime threads per instance")
    max_batch: int = option(8, at_least=1, help="largest dynamic batch")
    queue_delay_us: int = option(1000, at_least=0, help=_QUEUE_DELAY_HELP)
    max_queue: int = option(
        64, at_least=0, help="queued requests beyond this are rejected at once (0 = unbounded)"
    )
    max_pixels: int = option(4096 * 4096, at_least=1, help="largest image (H*W) the python steps accept")
    ensemble: bool = option(True, help="only the network model, no uint8 ensemble")
    warmup: bool = option(True, help="skip Triton's warm-up request at load")
    link_model: bool = False  # symlink the model file instead of copying (pconv serve's temp repository)

    def __post_init__(self) -> None:
        check(self)
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise RepositoryError(f"model name must be letters, digits, _ or -; got {self.name!r}")

    def model_name(self, part: str) -> str:
        return self.name + part


@dataclass(frozen=True)
class ServeRepoOptions(RepoOptions):
    """The repository ``pconv serve`` writes: the python backend (the bundled server has no ONNX
    Runtime backend), one instance per core, no queue delay (on CPU an image takes ~15 ms and a batch
    costs about the same per image: waiting 1 ms for company added 1.06 ms to every request at concurrency 1
    and batched just as much at concurrency 4, measured in issue 13), the model linked into the temporary
    folder."""

    backend: str = "python"
    instances: int = option(
        default_instances(), at_least=1, help="model instances", show=lambda n: f"{n}, one per CPU core"
    )
    queue_delay_us: int = option(0, at_least=0, help=_QUEUE_DELAY_HELP)
    link_model: bool = True


@dataclass(frozen=True)
class ServeOptions:
    """How ``pconv serve`` runs the server (loopback ports by default; ``repo``: its repository)."""

    host: str = option("127.0.0.1", help="address to bind (0.0.0.0 for all interfaces)")
    http_port: int = option(8000, at_least=1, help="HTTP port")
    grpc_port: int = option(8001, at_least=1, help="gRPC port")
    metrics_port: int = option(8002, at_least=1, help="Prometheus metrics port")
    ready_timeout: float = option(180.0, help="seconds to wait for the models")
    exit_timeout: int = option(30, at_least=0, help="seconds in-flight requests get on stop")
    admin_token: str | None = option(
        None,
        metavar="TOKEN",
        help="restrict the admin APIs to requests with header pconv-admin-key: TOKEN",
    )
    verbose: bool = option(False, help="Triton's verbose log (in the temporary folder)")
    repo: RepoOptions = field(default_factory=ServeRepoOptions)
    #: Library only: the CPU cores the server (and the python-backend stubs it starts, which inherit it)
    #: may run on; None = all. benchmarks/serving.py pins server and clients apart with it.
    cpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check(self)
        if self.cpus is not None:
            if not hasattr(os, "sched_setaffinity"):
                raise ServeError("pinning the server to CPUs (cpus=) needs Linux (os.sched_setaffinity)")
            usable = os.sched_getaffinity(0)
            if not self.cpus or not set(self.cpus) <= usable:
                raise ServeError(
                    f"cpus={self.cpus} must be a non-empty subset of this process's CPUs {sorted(usable)}"
                )

    @property
    def ports(self) -> dict[str, int]:
        return {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
