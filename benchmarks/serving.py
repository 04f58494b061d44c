"""Serving load test: in-process ``Inpainter`` vs ``pconv serve`` over gRPC and HTTP vs the ensemble.

One run, the same model (default: the shipped one), the same 256² uint8 image with a hole, the
``full`` strategy everywhere (what the ensemble does), and the same total threads: in-process is a
pool of ``--instances`` Inpainters with ``--threads`` ONNX Runtime threads each; the server runs
``--instances`` Triton model instances with ``--threads`` each (``pconv serve``'s defaults on CPU).

Load: a closed loop per concurrency level (1, 2, 4, 8 clients, each waiting for its answer before
sending the next), ``--seconds`` per level after a warm-up; throughput is answers per second of wall
time, latency p50/p99 per request. The generator is tritonclient-based: ``perf_analyzer`` from PyPI
(``perf-analyzer`` 2.60) needs glibc >= 2.38 and the one inside ``tritonclient[all]==2.44.0`` needs
``apt-get install libb64-0d`` and ``pip install nvidia-cuda-runtime-cu12``; where it runs, the same
server answers ``perf_analyzer -m pconv -u 127.0.0.1:8001 -i grpc --shape image:3,256,256
--shape mask:1,256,256 --concurrency-range 1:8:2``.

The goal (issue 13): the served model's best throughput >= 90 % of in-process throughput, and at
concurrency 1 the served p50 latency <= in-process p50 + 5 ms. The JSON records both ratios, the
machine, and the load average seen during the run.

Served modes: ``grpc`` and ``http`` (``Inpainter("grpc://...")``), ``grpc_shm`` and ``http_shm`` (the
same with ``?shm=system``: tensors through POSIX shared memory, not the socket) and ``ensemble_grpc``
(uint8 in, composite out).

``--server-cpus 1 --client-cpus 0`` emulates clients on another machine on one box: the server (and
its python-backend stubs) runs pinned to the server cores and this process, the load generator, to
the client cores while it drives the served modes; for the in-process rows this process is pinned to
the server cores, where inference and its pre/post share them as in-process use does. Instances
default to the number of server cores. The bias, recorded in the JSON: the served client's pre/post
(padding, compositing, encoding) runs on cores the in-process rows do not get.

    python benchmarks/serving.py [--seconds 4] [--instances 2] [--threads 1] [--out FILE]
    python benchmarks/serving.py --server-cpus 1 --client-cpus 0 [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pconv.models import resolve_model
from pconv.runtime import Inpainter
from pconv.serving.options import ServeRepoOptions
from pconv.serving.repository import COMPOSITE, HOLE_MASK, RGB_IMAGE
from pconv.serving.server import ServeOptions, TritonServer

CONCURRENCY = (1, 2, 4, 8)
Call = Callable[[], Any]


def sample(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : size // 2, size // 3 : (2 * size) // 3] = 255
    return image, mask


def closed_loop(
    make_client: Callable[[], tuple[Call, Callable[[], None]]], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` threads, each with its own client, calling back to back for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    errors: list[str] = []

    def worker() -> None:
        call, close = make_client()
        try:
            call()  # warm this client's connection
            ready.wait()
            mine = []
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                call()
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
        except Exception as exc:  # reported in the JSON, not hidden
            errors.append(f"{type(exc).__name__}: {exc}")
            ready.abort()
        finally:
            close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: its error is reported
        ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors or not latencies:
        return {"clients": clients, "errors": errors[:3]}
    ms = sorted(1000 * x for x in latencies)
    return {
        "clients": clients,
        "requests": len(ms),
        "throughput_per_s": round(len(ms) / wall, 2),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def in_process(
    model: Path, image: np.ndarray, mask: np.ndarray, instances: int, threads: int
) -> Callable[..., Any]:
    pool: queue.Queue[Inpainter] = queue.Queue()
    for _ in range(instances):
        pool.put(Inpainter(model, threads=threads))

    def make() -> tuple[Call, Callable[[], None]]:
        def call() -> Any:
            inpainter = pool.get()  # the same instances x threads as the server: a client waits for one
            try:
                return inpainter(image, mask, strategy="full")
            finally:
                pool.put(inpainter)

        return call, lambda: None

    return make


def remote(url: str, image: np.ndarray, mask: np.ndarray) -> Callable[..., Any]:
    def make() -> tuple[Call, Callable[[], None]]:
        inpainter = Inpainter(url)
        return (lambda: inpainter(image, mask, strategy="full")), inpainter.close

    return make


def ensemble(port: int, model: str, image: np.ndarray, mask: np.ndarray) -> Callable[..., Any]:
    import tritonclient.grpc as grpc

    def make() -> tuple[Call, Callable[[], None]]:
        client = grpc.InferenceServerClient(f"127.0.0.1:{port}")

        def call() -> Any:
            inputs = []
            for name, array in ((RGB_IMAGE, image), (HOLE_MASK, mask)):
                tensor = grpc.InferInput(name, list(array.shape), "UINT8")
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            return client.infer(model, inputs).as_numpy(COMPOSITE)

        return call, client.close

    return make


def parse_cpus(text: str) -> tuple[int, ...]:
    """``"0,2-3"`` -> ``(0, 2, 3)`` (an argparse ``type=``)."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CPU numbers like 0 or 0,1 or 0-3") from None
    if not cpus:
        raise argparse.ArgumentTypeError(f"{text!r}: no CPU given")
    return tuple(sorted(cpus))


def pin(cpus: tuple[int, ...] | None) -> None:
    """Run every thread of this process on ``cpus`` (None: leave as is). ``sched_setaffinity(0)`` moves
    only the calling thread, so each thread (ONNX Runtime's, gRPC's) is moved by its id; threads
    started later inherit from their creator."""
    if cpus is None:
        return
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def thread_affinities() -> list[list[int]]:
    """The distinct CPU affinities of this process's threads (one entry when pinning held for all)."""
    seen = set()
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):
            seen.add(tuple(sorted(os.sched_getaffinity(int(tid)))))
    return [list(s) for s in sorted(seen)]


def process_affinities(pid: int) -> dict[str, list[int]]:
    """The CPU affinity of ``pid`` and of its child processes (the python-backend stubs), as seen."""
    seen = {f"{pid} (tritonserver)": sorted(os.sched_getaffinity(pid))}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent pid
                seen[f"{entry} (stub)"] = sorted(os.sched_getaffinity(int(entry)))
    return seen


def _cpu_model() -> str:
    from cpu_inference import cpu_model  # same folder: run as a script

    return cpu_model()


def pinning(server: tuple[int, ...], client: tuple[int, ...], seen: dict[str, Any]) -> dict[str, Any]:
    """What ``--server-cpus``/``--client-cpus`` did, what it emulates and how it leans."""
    return {
        "emulates": "clients on another machine: the served modes' load generator and client work on "
        "client_cpus, the server on server_cpus, as if they were two machines joined by a free network",
        "server_cpus": list(server),
        "client_cpus": list(client),
        "in_process_cpus": list(server),
        "affinity_seen": seen,  # the server, its stubs, and this process's threads per side
        "bias": "favours the served modes: in-process does its pre/post (padding, compositing) on the "
        "inference cores, while the served client's pre/post and its gRPC/HTTP encoding run on the "
        "client cores, which the in-process rows do not get; no network cost is paid (loopback), and "
        "the shm modes only work with client and server on one machine, so they are not a remote path",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per level")
    parser.add_argument(
        "--instances", type=int, default=None, help="default: 2, or the number of --server-cpus"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument(
        "--server-cpus", type=parse_cpus, default=None, metavar="LIST",
        help="with --client-cpus: emulate clients on another machine (server and in-process rows on these)",
    )  # fmt: skip
    parser.add_argument(
        "--client-cpus", type=parse_cpus, default=None, metavar="LIST",
        help="the load generator's cores while it drives the served modes",
    )  # fmt: skip
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    server_cpus, client_cpus = args.server_cpus, args.client_cpus
    pinned = server_cpus is not None or client_cpus is not None
    if pinned:
        if server_cpus is None or client_cpus is None:
            parser.error("--server-cpus and --client-cpus go together")
        if set(server_cpus) & set(client_cpus):
            parser.error("--server-cpus and --client-cpus must not overlap (clients elsewhere)")
        usable = os.sched_getaffinity(0)
        if not set(server_cpus) | set(client_cpus) <= usable:
            parser.error(f"CPUs must be among this process's {sorted(usable)}")
    instances = args.instances or (len(server_cpus) if server_cpus else 2)
    levels = [int(c) for c in args.concurrency.split(",")]
    model = resolve_model(args.model)
    image, mask = sample(args.size)
    reference = Inpainter(model, threads=args.threads)(image, mask, strategy="full")

    options = ServeOptions(
        http_port=18200, grpc_port=18201, metrics_port=18202,
        repo=ServeRepoOptions(instances=instances, threads=args.threads),  # pconv serve's own defaults
        cpus=server_cpus,
    )  # fmt: skip
    load = [os.getloadavg()[0]]
    modes: dict[str, Callable[..., Any]] = {
        "in_process": in_process(model, image, mask, instances, args.threads)
    }
    served = ("grpc", "http", "grpc_shm", "http_shm", "ensemble_grpc")
    results: dict[str, list[dict[str, Any]]] = {}
    with TritonServer(model, options) as server:
        server.wait_ready()
        urls = server.urls()
        modes["grpc"] = remote(urls["grpc"], image, mask)
        modes["http"] = remote(urls["http"], image, mask)
        modes["grpc_shm"] = remote(urls["grpc"] + "?shm=system", image, mask)
        modes["http_shm"] = remote(urls["http"] + "?shm=system", image, mask)
        modes["ensemble_grpc"] = ensemble(options.grpc_port, server.summary["ensemble"], image, mask)
        identical = {}
        for name in served:
            call, close = modes[name]()
            identical[name] = bool(np.array_equal(call(), reference))
            close()
        seen: dict[str, Any] = process_affinities(server.pid) if pinned and server.pid else {}
        for level in levels:  # the modes interleaved per level, so background load hits them alike
            for name, make in modes.items():
                pin(server_cpus if name == "in_process" else client_cpus)
                if pinned:
                    side = "this_process_in_process" if name == "in_process" else "this_process_served"
                    seen.setdefault(side, thread_affinities())
                results.setdefault(name, []).append(closed_loop(make, level, args.seconds))
                load.append(os.getloadavg()[0])
                print(name, results[name][-1], file=sys.stderr, flush=True)

    def best(name: str) -> float:
        return max((r.get("throughput_per_s", 0.0) for r in results[name]), default=0.0)

    def p50_at_1(name: str) -> float | None:
        return next((r.get("p50_ms") for r in results[name] if r["clients"] == 1), None)

    base_best, base_p50 = best("in_process"), p50_at_1("in_process")
    summary = {}
    for name in served:
        p50 = p50_at_1(name)
        summary[name] = {
            "best_throughput_ratio": round(best(name) / base_best, 3) if base_best else None,
            "p50_c1_minus_in_process_ms": None
            if p50 is None or base_p50 is None
            else round(p50 - base_p50, 2),
        }
    goal = {
        name: {
            "throughput_ge_90pct": (s["best_throughput_ratio"] or 0) >= 0.9,
            "p50_c1_within_5ms": s["p50_c1_minus_in_process_ms"] is not None
            and s["p50_c1_minus_in_process_ms"] <= 5,
        }
        for name, s in summary.items()
    }
    report = {
        "benchmark": "serving",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": {"min": round(min(load), 2), "max": round(max(load), 2)},
            "note": args.note,
        },
        "setup": {
            "model": str(model),
            "image": f"{args.size}x{args.size} uint8",
            "strategy": "full",
            "instances": instances,
            "threads_per_instance": args.threads,
            "seconds_per_level": args.seconds,
            "server": "pconv serve: bundled tritonserver (nvidia-pytriton 0.7.0), python backend + ORT",
            "load_generator": "tritonclient closed loop (perf_analyzer does not run on glibc 2.36)",
            "queue_delay_us": options.repo.queue_delay_us,
            "max_batch": options.repo.max_batch,
        },
        **({"pinning": pinning(server_cpus, client_cpus, seen)} if pinned else {}),
        "bit_identical_to_in_process": identical,
        "results": results,
        "vs_in_process": summary,
        "goal_met": goal,
    }
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
