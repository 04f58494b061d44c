"""``pconv serve``'s launcher without a server: URLs, bind errors, stop signals (no Triton needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from pconv.serving.options import RepoOptions, ServeError, ServeOptions
from pconv.serving.server import TritonServer, check_ports, forwarded_signals, wait_for_exit

#: A child that ignores SIGTERM (a drain that never ends) and says when it is ready.
_STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


@pytest.fixture
def stubborn() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _server(summary: dict[str, Any]) -> TritonServer:
    server = TritonServer.__new__(TritonServer)  # no install, no repository: urls() only
    server.options = ServeOptions(repo=RepoOptions(backend="python"))
    server.summary = summary
    return server


def test_urls_without_an_ensemble_omit_it() -> None:
    urls = _server({"network": "pconv", "ensemble": None}).urls()
    assert "ensemble" not in urls and not any("None" in u for u in urls.values())
    assert list(urls) == ["grpc", "http", "metrics"]
    full = _server({"network": "pconv", "ensemble": "pconv_ensemble"}).urls()
    assert full["ensemble"].endswith("/v2/models/pconv_ensemble/infer")


def test_a_foreign_host_is_not_reported_as_a_busy_port() -> None:
    with pytest.raises(ServeError) as info:
        check_ports(ServeOptions(host="203.0.113.7"))  # TEST-NET-3: an address of no machine here
    message = str(info.value)
    assert message.startswith("cannot bind --host 203.0.113.7") and "in use" not in message
    assert "\n" not in message


def test_a_second_signal_kills_a_server_that_does_not_drain(stubborn: subprocess.Popen[bytes]) -> None:
    server = SimpleNamespace(process=stubborn)
    with forwarded_signals(server) as received:  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)  # forwarded as SIGTERM: ignored by the child
        assert stubborn.poll() is None
        os.kill(os.getpid(), signal.SIGINT)  # the second one kills
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert received == [signal.SIGTERM, signal.SIGINT]


def test_the_wait_after_a_stop_signal_is_bounded(stubborn: subprocess.Popen[bytes]) -> None:
    assert wait_for_exit(stubborn, [signal.SIGTERM], grace=0.5) == -signal.SIGKILL


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_cpus_pin_the_server_process_and_what_it_starts() -> None:
    """``ServeOptions(cpus=...)`` (library only, for the serving benchmark) is applied before exec, so
    the server and the processes it starts (python-backend stubs) inherit it."""
    from pconv.cliopts import cli_fields
    from pconv.serving.server import _child_setup

    cpu = min(os.sched_getaffinity(0))
    code = "import os, subprocess, sys; print(sorted(os.sched_getaffinity(0))); sys.stdout.flush(); "
    code += "subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'])"
    setup = _child_setup((cpu,))
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, preexec_fn=setup, capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == [f"[{cpu}]", f"[{cpu}]"], done.stderr
    for bad in ((), (max(os.sched_getaffinity(0)) + 1000,)):
        with pytest.raises(ServeError, match="non-empty subset of this process's CPUs"):
            ServeOptions(cpus=bad)
    assert "cpus" not in {f.name for f, _ in cli_fields(ServeOptions)}  # not a `pconv serve` flag
