"""``pconv serve`` and ``pconv triton-repo`` (argparse only at import; the rest when a command runs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pconv.cliopts import add_options, from_args
from pconv.serving.options import RepoOptions, ServeOptions, ServeRepoOptions


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
    add_options(p, ServeOptions)
    add_options(p, ServeRepoOptions, exclude=("kind",))  # its backend is python: not an option here
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
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_options(r, RepoOptions)
    r.set_defaults(func=_triton_repo)


def _serve(args: argparse.Namespace) -> int:
    from pconv.serving import environment

    if args.setup:
        install = environment.setup()
        print(f"pconv serve: Triton server at {install.binary}")
        return 0
    from pconv.models import resolve_model
    from pconv.serving.server import serve

    options = from_args(ServeOptions, args, repo=from_args(ServeRepoOptions, args))
    return serve(resolve_model(args.model), options)


def _triton_repo(args: argparse.Namespace) -> int:
    from pconv.models import resolve_model
    from pconv.serving.repository import write_repository

    options = from_args(RepoOptions, args)
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
