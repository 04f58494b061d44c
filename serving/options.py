"""The options of ``pconv triton-repo`` and ``pconv serve``, each default stated once (stdlib only,
so the CLI can read them at import time without numpy or tritonclient)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class RepoOptions:
    """How the repository serves the model (the CLI options of ``triton-repo`` and ``serve``)."""

    name: str = "pconv"
    backend: str = "auto"  # auto: onnxruntime for .onnx, tensorrt for engines
    kind: str = "cpu"
    instances: int = 1
    threads: int = 1  # ONNX Runtime intra-op threads per instance
    max_batch: int = 8
    queue_delay_us: int = 1000  # dynamic batcher: how long a request waits for others of its shape
    max_queue: int = 64  # requests waiting beyond this are rejected at once
    max_pixels: int = 4096 * 4096  # python steps: larger requests get a clean error
    warmup: bool = True
    ensemble: bool = True
    link_model: bool = False  # symlink the model file instead of copying (pconv serve's temp repository)

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *NETWORK_BACKENDS):
            raise RepositoryError(f"backend must be auto or one of {', '.join(NETWORK_BACKENDS)}")
        if self.kind not in KINDS:
            raise RepositoryError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        for what in ("instances", "threads", "max_batch", "max_pixels"):
            if int(getattr(self, what)) < 1:
                raise RepositoryError(f"{what.replace('_', '-')} must be >= 1; got {getattr(self, what)}")
        if self.queue_delay_us < 0 or self.max_queue < 0:
            raise RepositoryError("queue delay and queue size must be >= 0")
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise RepositoryError(f"model name must be letters, digits, _ or -; got {self.name!r}")

    def model_name(self, part: str) -> str:
        return self.name + part


@dataclass(frozen=True)
class ServeOptions:
    """How ``pconv serve`` runs the server (loopback ports by default; ``repo``: its repository)."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    ready_timeout: float = 180.0
    exit_timeout: int = 30
    admin_token: str | None = None
    log_verbose: int = 0
    repo: RepoOptions = field(default_factory=lambda: RepoOptions(backend="python"))

    @property
    def ports(self) -> dict[str, int]:
        return {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
