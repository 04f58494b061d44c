"""``pconv serve MODEL``: a real Triton Inference Server on this machine.

The server is the ``tritonserver`` binary from the ``nvidia-pytriton`` wheel
(:mod:`pconv.serving.environment`) on a repository that :mod:`pconv.serving.repository` writes into
a temporary folder: the network on the python backend running pconv's ONNX Runtime session (that
build has no ONNX Runtime backend), plus the uint8 ensemble. Why not PyTriton itself: it pins
``numpy<2`` (breaks opencv 5 next to it), adds a hop (stub -> ZeroMQ -> the user's process), fails
about 1 start in 6 with 2 instances (measured), and has no way to apply the libpython fix.

What this launcher adds to the binary: the libpython fix, loopback-only defaults, a one-line error
for a busy port, readiness per model (``/v2/models/<name>/ready``: ``/v2/health/ready`` turns 200
before the models load), and SIGTERM/SIGINT forwarded as one SIGTERM, on which Triton stops taking
new requests and lets in-flight ones finish (up to ``--exit-timeout``). ``--admin-token`` restricts
the admin APIs (model repository, shared memory, statistics, trace, logging) to requests carrying
``pconv-admin-key: TOKEN`` (HTTP header) or ``triton-grpc-protocol-pconv-admin-key: TOKEN`` (gRPC
metadata: Triton prefixes the key for gRPC, so the two names differ).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from pconv.contract import ADMIN_HEADER
from pconv.serving.environment import TritonInstall, backend_directory, find_install, server_env
from pconv.serving.options import ENSEMBLE, NETWORK, ServeError, ServeOptions
from pconv.serving.repository import validate_repository, write_repository

ADMIN_APIS = "model-repository,shared-memory,statistics,trace,logging"
#: Seconds past --exit-timeout after which a stopping server is killed.
KILL_GRACE_S = 15


def check_ports(options: ServeOptions) -> None:
    """A one-line :class:`ServeError` for the first port something already listens on."""
    flag = {"HTTP": "--http-port", "gRPC": "--grpc-port", "metrics": "--metrics-port"}
    seen: set[int] = set()
    for what, port in options.ports.items():
        if port in seen:
            raise ServeError(f"the {what} port {port} is given twice: pass distinct ports")
        seen.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((options.host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # a bad or foreign address, a privileged port, ...
                    raise ServeError(
                        f"cannot bind --host {options.host} {flag[what]} {port} "
                        f"({exc.strerror or exc}): pass an address of this machine (127.0.0.1, 0.0.0.0)"
                    ) from exc
                raise ServeError(
                    f"the {what} port {options.host}:{port} is in use ({exc.strerror}; another pconv "
                    f"serve or tritonserver?): stop it or pass {flag[what]} with a free port"
                ) from exc


def server_command(install: TritonInstall, repo: Path, backends: Path, options: ServeOptions) -> list[str]:
    host = options.host
    command = [
        str(install.binary),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        f"--http-address={host}",
        f"--http-port={options.http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={options.grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={options.metrics_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--allow-cpu-metrics=true",
        "--strict-readiness=true",
        "--disable-auto-complete-config",
        f"--exit-timeout-secs={options.exit_timeout}",
        f"--log-verbose={int(options.verbose)}",
    ]
    if options.admin_token:
        restrict = f"{ADMIN_APIS}:{ADMIN_HEADER}={options.admin_token}"
        command += [f"--http-restricted-api={restrict}", f"--grpc-restricted-protocol={restrict}"]
    return command


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path: Path, lines: int = 400) -> str:
    """The server log's most telling line (an error), for a one-line failure message."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    text = [line for line in text if "CudaDriverHelper" not in line]  # always logged on a CPU machine
    for marker in (
        "already in use",
        "failed to load '",
        "failed to load model",
        "failed to load",
        "error:",
        "Error",
    ):
        hits = [line for line in text if marker in line]
        if hits:
            return " ".join(hits[-1].split())[:400]
    return " ".join(text[-1].split())[:400] if text else ""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM the server if the launcher dies (no orphaned tritonserver)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _child_setup(cpus: tuple[int, ...] | None) -> Callable[[], None]:
    """The child's pre-exec step: die with the parent and, with ``cpus``, run only on those cores
    (set before exec, so every thread and stub process the server starts inherits it)."""

    def setup() -> None:
        _die_with_parent()
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    return setup


class TritonServer:
    """A running ``tritonserver`` on a generated repository; a context manager that stops it."""

    def __init__(
        self,
        model: str | Path | None,
        options: ServeOptions,
        install: TritonInstall | None = None,
        *,
        repository: Path | None = None,
    ):
        """Serve ``model`` on a repository written to a temporary folder, or an existing ``repository``
        (checked first; its models must run on this build: python backend and ensembles)."""
        self.options = options
        self.install = install or find_install()
        check_ports(options)
        self._tmp = tempfile.TemporaryDirectory(prefix="pconv-serve-")
        root = Path(self._tmp.name)
        if repository is None:
            if model is None:
                raise ServeError("give a model file or an existing repository to serve")
            self.repository = root / "models"
            self.summary = write_repository(model, self.repository, options.repo)
        else:
            self.repository = Path(repository).resolve()
            names = validate_repository(self.repository)
            network, ensemble = options.repo.model_name(NETWORK), options.repo.model_name(ENSEMBLE)
            self.summary = {
                "models": names,
                "network": network,
                "ensemble": ensemble if ensemble in names else None,
            }
        self.models: list[str] = list(self.summary["models"])
        self.backends = backend_directory(self.install, root / "backends")
        self.log_path = root / "tritonserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.options.host}:{self.options.http_port}"

    def urls(self) -> dict[str, str]:
        """The client URLs (no ``ensemble`` entry when the repository has none: ``--no-ensemble``)."""
        host, o = self.options.host, self.options
        urls = {
            "grpc": f"grpc://{host}:{o.grpc_port}/{self.summary['network']}",
            "http": f"http://{host}:{o.http_port}/{self.summary['network']}",
        }
        if self.summary.get("ensemble"):
            urls["ensemble"] = f"{self.base_url}/v2/models/{self.summary['ensemble']}/infer"
        urls["metrics"] = f"http://{host}:{o.metrics_port}/metrics"
        return urls

    def start(self) -> TritonServer:
        command = server_command(self.install, self.repository, self.backends, self.options)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(self.install),
            start_new_session=True,  # a terminal's Ctrl-C reaches pconv, which forwards one SIGTERM
            preexec_fn=_child_setup(self.options.cpus) if sys.platform.startswith("linux") else None,
        )
        log.close()
        return self

    def wait_ready(self) -> None:
        """Block until every model answers ``/v2/models/<name>/ready``, or raise :class:`ServeError`."""
        deadline = time.monotonic() + self.options.ready_timeout
        pending = list(self.models)
        while pending:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServeError(
                    f"tritonserver exited (code {code}) before the models were ready: "
                    f"{_log_tail(self.log_path)} (log: {self.log_path})"
                )
            pending = [m for m in pending if not _ready(f"{self.base_url}/v2/models/{m}/ready")]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise ServeError(
                    f"models {pending} were not ready after {self.options.ready_timeout:.0f} s: "
                    f"{_log_tail(self.log_path)} (log: {self.log_path}; raise --ready-timeout?)"
                )
            time.sleep(0.25)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL after ``timeout``; the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout if timeout is not None else self.options.exit_timeout + KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return process.returncode

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def forwarded_signals(server: TritonServer) -> Iterator[list[int]]:
    """SIGTERM and SIGINT forwarded to the server once (a background job ignores SIGINT otherwise)."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        process = server.process
        if process is None or process.poll() is not None:
            return
        if len(received) == 1:
            process.send_signal(signal.SIGTERM)  # Triton drains in-flight requests
        else:
            process.kill()  # a second Ctrl-C / SIGTERM: stop now, do not wait for the drain

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def wait_for_exit(process: subprocess.Popen[bytes], received: list[int], grace: float) -> int:
    """The server's exit code; once a stop signal came, SIGKILL it if it outlives ``grace`` seconds
    (Triton's own --exit-timeout plus a margin), so the launcher never hangs on a stuck drain."""
    deadline: float | None = None
    while process.poll() is None:
        if received and deadline is None:
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
    return int(process.returncode)


def serve(model: str | Path, options: ServeOptions, out: Any = sys.stderr) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT; the server's exit code."""
    server = TritonServer(model, options)
    try:
        with forwarded_signals(server) as received:
            server.start()
            try:
                server.wait_ready()
            except ServeError:
                if received:
                    return 0
                raise
            if not received:
                urls = server.urls()
                print(f"pconv serve: ready (pid {server.pid}); models: {', '.join(server.models)}", file=out)
                for key, url in urls.items():
                    print(f"  {key:9s} {url}", file=out)
                print("  stop with Ctrl-C or SIGTERM (in-flight requests finish)", file=out, flush=True)
            assert server.process is not None
            code = wait_for_exit(server.process, received, server.options.exit_timeout + KILL_GRACE_S)
        if received:
            print("pconv serve: stopped", file=out, flush=True)
            return 0 if code in (0, -signal.SIGTERM) else int(code)
        raise ServeError(f"tritonserver stopped by itself (code {code}): {_log_tail(server.log_path)}")
    finally:
        server.close()
