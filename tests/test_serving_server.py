"""A real Triton server (``pconv serve``, the bundled tritonserver) on 127.0.0.1, bounded in time.

One server for the module (2 instances x 1 thread, the shipped model), started as the CLI starts it
and stopped by PID. Its results are compared byte for byte with in-process ``Inpainter``.
Skips (with the fix) only when the serving environment is absent; ``make setup`` installs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

tritonclient = pytest.importorskip(
    "tritonclient.grpc", reason="needs tritonclient: pip install 'pconv[serve]'"
)

from pconv.errors import InputError  # noqa: E402
from pconv.runtime import Inpainter  # noqa: E402
from pconv.serving import environment  # noqa: E402

try:
    environment.find_install()
except environment.ServeEnvironmentError as exc:
    pytest.skip(f"no Triton server binary ({exc})", allow_module_level=True)

import tritonclient.http as triton_http  # noqa: E402

START_TIMEOUT_S = 120
ADMIN_TOKEN = "s3cret"
MAX_PIXELS = 512 * 512  # the server's per-image limit in this module (requests above it are refused)


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    server_pid: int
    http: int
    grpc: int
    metrics: int
    log: Path

    def stop(self) -> int:
        """SIGTERM pconv serve (it forwards to tritonserver), then SIGKILL both by PID after a bound."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()  # the launcher did not finish: its tritonserver may still run
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.server_pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


def start_serve(tmp: Path, *extra: str) -> Served:
    http, grpc, metrics = free_ports(3)
    log = tmp / "serve.log"
    command = [sys.executable, "-m", "pconv", "serve", "default", "--http-port", str(http), "--grpc-port",
               str(grpc), "--metrics-port", str(metrics), "--instances", "2", "--threads", "1",
               "--max-pixels", str(MAX_PIXELS), "--exit-timeout", "20", *extra]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"ready \(pid (\d+)\)", text)
        if found:
            return Served(process, int(found.group(1)), http, grpc, metrics, log)
        if process.poll() is not None:
            pytest.fail(f"pconv serve exited ({process.returncode}): {text[-2000:]}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"pconv serve was not ready within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_serve(tmp_path_factory.mktemp("serve"), "--admin-token", ADMIN_TOKEN)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local() -> Inpainter:
    return Inpainter("default", threads=1)


def sample(seed: int, size: tuple[int, int] = (100, 130)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    mask = np.zeros(size, dtype=np.uint8)
    h, w = size
    mask[h // 4 : h // 2, w // 3 : (2 * w) // 3] = 255
    mask[rng.integers(0, h, 20), rng.integers(0, w, 20)] = 1
    return image, mask


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_results_are_bit_identical_to_in_process(
    served: Served, local: Inpainter, protocol: str
) -> None:
    port = served.grpc if protocol == "grpc" else served.http
    images = [sample(seed, size) for seed, size in enumerate([(100, 130), (64, 64), (200, 90)])]
    with Inpainter(f"{protocol}://127.0.0.1:{port}/pconv") as remote:
        assert remote.info.size_multiple == local.info.size_multiple
        for strategy in ("full", "crop"):
            for image, mask in images:
                expected = local(image, mask, strategy=strategy)
                got = remote(image, mask, strategy=strategy)
                assert got.dtype == np.uint8
                assert np.array_equal(got, expected), (protocol, strategy, image.shape)
        # a list of images of one size: batched tiles, still per-image identical
        batch = [sample(10 + i)[0] for i in range(3)]
        mask = sample(0)[1]
        for got, expected in zip(remote(batch, mask), local(batch, mask)):
            assert np.array_equal(got, expected)


def _ensemble(port: int, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        inputs = []
        for name, array in (("image", image), ("mask", mask)):
            tensor = triton_http.InferInput(name, list(array.shape), "UINT8")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result: np.ndarray = client.infer("pconv_ensemble", inputs).as_numpy("composite")
        return result
    finally:
        client.close()


def test_ensemble_takes_uint8_of_any_size_and_matches_full_strategy(served: Served, local: Inpainter) -> None:
    for seed, size in enumerate([(100, 130), (37, 211)]):
        image, mask = sample(seed, size)
        got = _ensemble(served.http, image, mask)
        assert np.array_equal(got, local(image, mask, strategy="full"))
        valid = mask == 0
        assert np.array_equal(got[valid], image[valid])  # valid pixels are the caller's own bytes


def test_concurrent_clients_get_their_own_results(served: Served, local: Inpainter) -> None:
    cases = [sample(seed) for seed in range(8)]
    expected = [local(image, mask, strategy="full") for image, mask in cases]
    url = f"grpc://127.0.0.1:{served.grpc}/pconv"

    def call(index: int) -> np.ndarray:
        with Inpainter(url) as remote:
            result: np.ndarray = remote(*cases[index], strategy="full")
            return result

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(len(cases))))
    for got, want in zip(results, expected):
        assert np.array_equal(got, want)


def test_bad_requests_get_clean_errors_and_the_server_keeps_serving(served: Served, local: Inpainter) -> None:
    url = f"grpc://127.0.0.1:{served.grpc}/pconv"
    with Inpainter(url) as remote:
        big = np.zeros((1, 3, 1024, 1024), np.float32)
        with pytest.raises(InputError, match="larger than this server's limit"):
            remote.backend.run(big, np.ones((1, 1, 1024, 1024), np.float32))
        with pytest.raises(InputError, match=r"\(.*batch-size must be <= 8") as over:  # Triton's own words
            remote.backend.run(np.zeros((9, 3, 64, 64), np.float32), np.ones((9, 1, 64, 64), np.float32))
        assert "\n" not in str(over.value)
        # a malformed tensor: 2 mask channels (the config says 1), refused by Triton itself
        client = tritonclient.InferenceServerClient(f"127.0.0.1:{served.grpc}")
        image = tritonclient.InferInput("image", [1, 3, 64, 64], "FP32")
        image.set_data_from_numpy(np.zeros((1, 3, 64, 64), np.float32))
        mask = tritonclient.InferInput("mask", [1, 2, 64, 64], "FP32")
        mask.set_data_from_numpy(np.zeros((1, 2, 64, 64), np.float32))
        with pytest.raises(tritonclient.InferenceServerException, match="mask"):
            client.infer("pconv", [image, mask])
        client.close()
        with pytest.raises(tritonclient_http_error()):  # the ensemble refuses an oversize image too
            _ensemble(served.http, np.zeros((600, 600, 3), np.uint8), np.ones((600, 600), np.uint8))
        image8, mask8 = sample(3)
        assert np.array_equal(remote(image8, mask8), local(image8, mask8))  # still serving


def tritonclient_http_error() -> type[Exception]:
    from tritonclient.utils import InferenceServerException

    return InferenceServerException


def test_busy_port_is_one_line_naming_the_fix(served: Served) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pconv", "serve", "default", "--http-port", str(served.http)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port 127.0.0.1:{served.http} is in use" in lines[0] and "--http-port" in lines[0]


def test_metrics_and_per_model_readiness(served: Served) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{served.metrics}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert 'nv_inference_request_success{model="pconv"' in text
    for model in ("pconv", "pconv_pre", "pconv_post", "pconv_ensemble"):
        with urllib.request.urlopen(
            f"http://127.0.0.1:{served.http}/v2/models/{model}/ready", timeout=10
        ) as r:
            assert r.status == 200


def test_admin_token_restricts_the_admin_apis_over_http_and_grpc(served: Served) -> None:
    import urllib.error
    import urllib.request

    from pconv.contract import ADMIN_GRPC_HEADER, ADMIN_HEADER

    index = f"http://127.0.0.1:{served.http}/v2/repository/index"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(index, data=b"{}"), timeout=10)
    assert refused.value.code == 403
    request = urllib.request.Request(index, data=b"{}", headers={ADMIN_HEADER: ADMIN_TOKEN})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    client = tritonclient.InferenceServerClient(f"127.0.0.1:{served.grpc}")
    try:
        with pytest.raises(tritonclient.InferenceServerException, match=ADMIN_GRPC_HEADER):
            client.get_model_repository_index(headers={ADMIN_HEADER: ADMIN_TOKEN})  # the HTTP name: refused
        headers = {ADMIN_GRPC_HEADER: ADMIN_TOKEN}
        names = {m.name for m in client.get_model_repository_index(headers=headers).models}
        assert "pconv_ensemble" in names
        assert client.is_model_ready("pconv")  # inference, health and metadata stay open
    finally:
        client.close()


def test_wrong_contract_and_unknown_model_are_one_line_errors(served: Served) -> None:
    from pconv.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="not the pconv contract") as info:
        Inpainter(f"grpc://127.0.0.1:{served.grpc}/pconv_ensemble")
    assert "\n" not in str(info.value)
    with pytest.raises(ModelLoadError, match="no ready model 'nope'"):
        Inpainter(f"http://127.0.0.1:{served.http}/nope")


# -- system shared memory (?shm=system) -----------------------------------------------------------------
def _admin(protocol: str) -> dict[str, str]:
    """The ``--admin-token`` key under the name each protocol needs (the shared-memory API is restricted)."""
    from pconv.contract import ADMIN_GRPC_HEADER, ADMIN_HEADER

    return {(ADMIN_GRPC_HEADER if protocol == "grpc" else ADMIN_HEADER): ADMIN_TOKEN}


def _shm_backend(served: Served, protocol: str, *, headers: dict[str, str] | None = None) -> Inpainter:
    from pconv.runtime.triton_backend import TritonBackend

    port = served.grpc if protocol == "grpc" else served.http
    url = f"{protocol}://127.0.0.1:{port}/pconv?shm=system"
    return Inpainter.from_backend(
        TritonBackend(url, headers=_admin(protocol) if headers is None else headers)
    )


def _our_shm_files() -> set[str]:
    """This process's regions in /dev/shm (the python backend's own regions have other names)."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(f"pconv-{os.getpid()}-")}


def _server_regions(served: Served) -> set[str]:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{served.http}")
    try:
        status = client.get_system_shared_memory_status(headers=_admin("http"))
        return {str(r["name"]) for r in status if str(r["name"]).startswith(f"pconv-{os.getpid()}-")}
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_shared_memory_is_bit_identical_to_the_socket_and_leaves_nothing_behind(
    served: Served, local: Inpainter, protocol: str
) -> None:
    from pconv.contract import round_up
    from pconv.runtime.triton_backend import SHM_SHAPES

    port = served.grpc if protocol == "grpc" else served.http
    before = _our_shm_files()
    # more padded shapes than the backend keeps registered, then the first again: eviction and reuse
    sizes = [(100, 130), (64, 64), (200, 90), (150, 300), (128, 256), (100, 130)]
    multiple = local.info.size_multiple
    assert len({(round_up(h, multiple), round_up(w, multiple)) for h, w in sizes}) > SHM_SHAPES
    with Inpainter(f"{protocol}://127.0.0.1:{port}/pconv") as plain, _shm_backend(served, protocol) as shm:
        prefix = shm.backend._shm_prefix
        for seed, size in enumerate(sizes):
            image, mask = sample(seed, size)
            for strategy in ("full", "crop"):
                got = shm(image, mask, strategy=strategy)
                assert np.array_equal(got, plain(image, mask, strategy=strategy)), (size, strategy)
                assert np.array_equal(got, local(image, mask, strategy=strategy))
        # the network's float output itself, a batch of 2: the same bytes as over the socket
        batch = np.random.default_rng(3).random((2, 3, 64, 128), dtype=np.float32)
        ones = np.ones((2, 1, 64, 128), np.float32)
        assert np.array_equal(
            shm.backend.run(batch, ones)["output"], plain.backend.run(batch, ones)["output"]
        )
        registered = _server_regions(served)
        assert registered and all(name.startswith(prefix) for name in registered)
        assert len(registered) == 3 * SHM_SHAPES  # image, mask, output per kept shape; older ones released
        assert _our_shm_files() - before == registered
    assert _our_shm_files() == before  # unlinked on close
    assert _server_regions(served) == set()  # and unregistered


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_shared_memory_without_the_admin_key_is_one_line_naming_the_header(
    served: Served, protocol: str
) -> None:
    from pconv.errors import ModelLoadError

    before = _our_shm_files()
    header = next(iter(_admin(protocol)))
    for headers in ({}, {header: "wrong"}):
        with pytest.raises(ModelLoadError, match="restricts its shared-memory API") as info:
            _shm_backend(served, protocol, headers=headers)
        text = str(info.value)
        assert "\n" not in text and f"headers={{'{header}': TOKEN}}" in text and "--admin-token" in text
    assert _our_shm_files() == before and _server_regions(served) == set()


def test_bad_shm_option_is_one_line(served: Served) -> None:
    from pconv.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"shm='cuda' is not a transport: use shm=system") as info:
        Inpainter(f"grpc://127.0.0.1:{served.grpc}/pconv?shm=cuda")
    assert "\n" not in str(info.value)


def test_a_failed_registration_releases_what_it_made(served: Served, local: Inpainter) -> None:
    """The server refuses the second region of a new shape (as a server on another host would, which
    cannot open this machine's /dev/shm): one line naming the fix, the shape's first region released,
    and the backend still serves with the shapes it has."""
    from pconv.errors import ModelLoadError

    before = _our_shm_files()
    image, mask = sample(1)
    with _shm_backend(served, "grpc") as shm:
        expected = shm(image, mask, strategy="full")
        kept = _server_regions(served)
        register = shm.backend.client.register_system_shared_memory
        calls: list[str] = []

        def refuse_second(name: str, *args: object, **kwargs: object) -> object:
            calls.append(name)
            if len(calls) == 2:
                raise tritonclient.InferenceServerException(f"Unable to open shared memory region: '/{name}'")
            return register(name, *args, **kwargs)

        shm.backend.client.register_system_shared_memory = refuse_second
        with pytest.raises(ModelLoadError, match="needs the server on this machine") as info:
            shm(*sample(2, (64, 64)), strategy="full")
        assert "\n" not in str(info.value) and "drop ?shm=system" in str(info.value)
        assert len(calls) == 2
        assert _server_regions(served) == kept  # the new shape's first region was unregistered
        assert len(_our_shm_files() - before) == len(kept)  # and unlinked
        shm.backend.client.register_system_shared_memory = register
        assert np.array_equal(shm(image, mask, strategy="full"), expected)
    assert _our_shm_files() == before and _server_regions(served) == set()


def test_concurrent_shared_memory_clients_get_their_own_results(served: Served, local: Inpainter) -> None:
    cases = [sample(seed) for seed in range(6)]  # one shape: equal region sizes, distinct names
    expected = [local(image, mask, strategy="full") for image, mask in cases]
    before = _our_shm_files()

    def call(index: int) -> list[np.ndarray]:
        with _shm_backend(served, "grpc" if index % 2 else "http") as shm:
            return [shm(*cases[(index + k) % len(cases)], strategy="full") for k in range(3)]

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(call, range(len(cases))))
    for index, got in enumerate(results):
        for k, result in enumerate(got):
            assert np.array_equal(result, expected[(index + k) % len(cases)]), (index, k)
    assert _our_shm_files() == before and _server_regions(served) == set()


def test_sigterm_drains_in_flight_requests(served: Served, local: Inpainter) -> None:
    """Last in the module: SIGTERM while requests are queued; every accepted one finishes.

    Four requests of 4 x 512² go out at once as raw tensors (sending takes milliseconds, each takes
    hundreds on 2 instances); SIGTERM follows the first answer, so the others are queued or running.
    """
    rng = np.random.default_rng(7)
    batches = []
    for _ in range(4):
        mask = np.ones((4, 1, 512, 512), np.float32)
        mask[:, :, 100:300, 150:350] = 0
        batches.append(((rng.random((4, 3, 512, 512), dtype=np.float32) * mask), mask))
    url = f"grpc://127.0.0.1:{served.grpc}/pconv"
    clients = [Inpainter(url) for _ in batches]
    finished: list[float] = []

    def call(index: int) -> np.ndarray:
        result = clients[index].backend.run(*batches[index])["output"]
        finished.append(time.monotonic())
        return result

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        futures = [pool.submit(call, i) for i in range(len(batches))]
        wait(futures, timeout=60, return_when=FIRST_COMPLETED)
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        results = [f.result(timeout=60) for f in futures]
    for client in clients:
        client.close()
    assert max(finished) > signalled, "no request was still in flight at SIGTERM"
    for (image, mask), got in zip(batches, results):
        assert np.array_equal(got, local.backend.run(image, mask)["output"])
    assert served.process.wait(timeout=60) == 0
    assert "stopped" in served.log.read_text()


def test_triton_repo_output_loads_on_the_bundled_server_with_a_python_stand_in(tmp_path: Path) -> None:
    """``pconv triton-repo``'s pre/post/ensemble, byte for byte, on the bundled tritonserver; only the
    network (onnxruntime backend, absent from that build) is swapped for the python stand-in."""
    import shutil

    from pconv.models import default_onnx
    from pconv.serving.repository import RepoOptions, write_repository
    from pconv.serving.server import ServeOptions, TritonServer

    repo = tmp_path / "models"
    done = subprocess.run(
        [sys.executable, "-m", "pconv", "triton-repo", "default", "-o", str(repo)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert 'backend: "onnxruntime"' in (repo / "pconv" / "config.pbtxt").read_text()
    stand_in = tmp_path / "stand_in"
    write_repository(default_onnx(), stand_in, RepoOptions(backend="python", ensemble=False))
    shutil.rmtree(repo / "pconv")
    shutil.copytree(stand_in / "pconv", repo / "pconv")
    http, grpc, metrics = free_ports(3)
    options = ServeOptions(
        http_port=http, grpc_port=grpc, metrics_port=metrics, ready_timeout=START_TIMEOUT_S
    )
    image, mask = sample(5, (77, 150))
    with TritonServer(None, options, repository=repo) as server:
        server.wait_ready()
        got = _ensemble(http, image, mask)
    assert np.array_equal(got, Inpainter("default")(image, mask, strategy="full"))


def test_a_full_queue_rejects_at_once_and_the_server_keeps_serving() -> None:
    """``--max-queue 1`` on one instance: a burst gets Triton's rejection (UNAVAILABLE), which the
    client retries with backoff and then reports as one ServerBusyError line; the rest are served."""
    from pconv.models import default_onnx
    from pconv.runtime.triton_backend import ServerBusyError
    from pconv.serving.repository import RepoOptions
    from pconv.serving.server import ServeOptions, TritonServer

    http, grpc, metrics = free_ports(3)
    repo = RepoOptions(backend="python", instances=1, max_queue=1, queue_delay_us=0, ensemble=False)
    options = ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics, repo=repo)
    mask = np.ones((4, 1, 512, 512), np.float32)
    image = np.random.default_rng(1).random((4, 3, 512, 512), dtype=np.float32)
    with TritonServer(default_onnx(), options) as server:
        server.wait_ready()
        url = f"grpc://127.0.0.1:{grpc}/pconv?retries=0"

        def call(_: int) -> str:
            with Inpainter(url) as remote:
                try:
                    remote.backend.run(image, mask)
                    return "ok"
                except ServerBusyError as exc:
                    assert "\n" not in str(exc) and "--max-queue" in str(exc)
                    return "busy"

        with ThreadPoolExecutor(max_workers=6) as pool:
            outcomes = list(pool.map(call, range(6)))
        assert "busy" in outcomes and "ok" in outcomes, outcomes
        with Inpainter(f"grpc://127.0.0.1:{grpc}/pconv") as remote:  # default retries: served
            assert remote.backend.run(image[:1], mask[:1])["output"].shape == (1, 3, 512, 512)
