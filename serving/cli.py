"""``pconv serve`` and ``pconv triton-repo`` (argparse only at import; the rest when a command runs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pconv.serving.options import KINDS, NETWORK_BACKENDS, RepoOptions, ServeOptions

#: The defaults the flags show and use: the options dataclasses' own (each stated once, there).
_REPO = RepoOptions()
_SERVE = ServeOptions()


def _repo_args(p: argparse.ArgumentParser, *, default_instances: str) -> None:
    p.add_argument(
        "--name", default=_REPO.name, help="model name (the pre/post/ensemble models get suffixes)"
    )
    p.add_argument(
        "--instances", type=int, default=None, help=f"model instances (default: {default_instances})"
    )
    p.add_argument("--threads", type=int, default=_REPO.threads, help="ONNX Runtime threads per instance")
    p.add_argument("--max-batch", type=int, default=_REPO.max_batch, help="largest dynamic batch")
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=_REPO.queue_delay_us,
        help="how long the dynamic batcher holds a request for others of its shape (microseconds)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=_REPO.max_queue,
        help="queued requests beyond this are rejected at once (0 = unbounded)",
    )
    p.add_argument(
        "--max-pixels", type=int, default=_REPO.max_pixels, help="largest image (H*W) the python steps accept"
    )
    p.add_argument("--no-ensemble", action="store_true", help="only the network model, no uint8 ensemble")
    p.add_argument("--no-warmup", action="store_true", help="skip Triton's warm-up request at load")


def _repo_options(args: argparse.Namespace, **fixed: Any) -> RepoOptions:
    default_instances = fixed.pop("instances", 1)
    return RepoOptions(
        name=args.name,
        instances=args.instances or default_instances,
        threads=args.threads,
        max_batch=args.max_batch,
        queue_delay_us=args.queue_delay_us,
        max_queue=args.max_queue,
        max_pixels=args.max_pixels,
        ensemble=not args.no_ensemble,
        warmup=not args.no_warmup,
        **fixed,
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model on a real Triton Inference Server (HTTP, gRPC, metrics)",
        description="Start NVIDIA Triton Inference Server (the tritonserver binary of the nvidia-pytriton "
        "wheel, installed by `pconv serve --setup`) on a repository generated for MODEL: the network with "
        "dynamic batching (instances x threads) and the uint8 ensemble (pre -> network -> post). Binds "
        "127.0.0.1 unless --host is given. Prints the model URLs once every model is ready; SIGTERM or "
        "Ctrl-C drains in-flight requests and stops. Clients: Inpainter('grpc://HOST:8001/pconv').",
    )
    p.add_argument("model", nargs="?", default="default", help="a .onnx model (default: the shipped one)")
    p.add_argument("--setup", action="store_true", help="install the Triton server binary and exit")
    p.add_argument("--host", default=_SERVE.host, help="address to bind (0.0.0.0 for all interfaces)")
    p.add_argument("--http-port", type=int, default=_SERVE.http_port)
    p.add_argument("--grpc-port", type=int, default=_SERVE.grpc_port)
    p.add_argument("--metrics-port", type=int, default=_SERVE.metrics_port)
    p.add_argument(
        "--ready-timeout", type=float, default=_SERVE.ready_timeout, help="seconds to wait for the models"
    )
    p.add_argument(
        "--exit-timeout", type=int, default=_SERVE.exit_timeout, help="seconds in-flight requests get on stop"
    )
    p.add_argument(
        "--admin-token",
        default=None,
        help="restrict the admin APIs to requests with header pconv-admin-key: TOKEN",
    )
    p.add_argument("--verbose", action="store_true", help="Triton's verbose log (in the temporary folder)")
    _repo_args(p, default_instances="one per CPU core")
    p.set_defaults(func=_serve)

    r = sub.add_parser(
        "triton-repo",
        help="write a Triton model repository (network + uint8 ensemble) for the NGC container",
        description="Write a Triton model repository for MODEL (.onnx or a TensorRT engine with its "
        "sidecar): the network on the onnxruntime or tensorrt backend with dynamic batching and instance "
        "groups, python pre/post steps and an ensemble taking a uint8 HWC image and a uint8 mask "
        "(non-zero = hole) of any size. Every config.pbtxt is checked with Triton's own protobuf.",
    )
    r.add_argument("model", help="a .onnx model or a .engine/.plan TensorRT engine (or 'default')")
    r.add_argument("-o", "--out", required=True, type=Path, help="repository folder (new or empty)")
    r.add_argument(
        "--backend",
        default=_REPO.backend,
        choices=("auto", *NETWORK_BACKENDS),
        help="Triton backend of the network (auto: onnxruntime for .onnx, tensorrt for engines; python: "
        "pconv's ONNX Runtime session, what pconv serve uses)",
    )
    r.add_argument("--kind", default=_REPO.kind, choices=KINDS, help="instance kind")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    _repo_args(r, default_instances="1")
    r.set_defaults(func=_triton_repo)


def _serve(args: argparse.Namespace) -> int:
    from pconv.serving import environment

    if args.setup:
        install = environment.setup()
        print(f"pconv serve: Triton server at {install.binary}")
        return 0
    from pconv.models import resolve_model
    from pconv.serving.server import default_instances, serve

    options = ServeOptions(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        ready_timeout=args.ready_timeout,
        exit_timeout=args.exit_timeout,
        admin_token=args.admin_token,
        log_verbose=1 if args.verbose else 0,
        repo=_repo_options(args, instances=default_instances(), backend="python", link_model=True),
    )
    return serve(resolve_model(args.model), options)


def _triton_repo(args: argparse.Namespace) -> int:
    from pconv.models import resolve_model
    from pconv.serving.repository import write_repository

    options = _repo_options(args, backend=args.backend, kind=args.kind)
    summary = write_repository(resolve_model(args.model), args.out, options)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"wrote {summary['repository']}: models {', '.join(summary['models'])} ({summary['backend']} backend)"
    )
    for note in summary["notes"]:
        print(f"note: {note}")
    return 0
