"""``pconv triton-repo``: configs checked with Triton's own protobuf, invalid ones caught; the
client side (addresses, unreachable servers) and ``Inpainter(threads=N)``. No server needed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="needs tritonclient: pip install 'pconv[serve]'")

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from pconv.contract import META_CONFIG, META_FORMAT, META_MASK, META_MULTIPLE
from pconv.errors import ModelLoadError
from pconv.models import default_onnx
from pconv.runtime import Inpainter, ModelInfo
from pconv.runtime.triton_backend import ServerUnavailableError, TritonBackend, parse_address
from pconv.serving.repository import (
    ModelFacts,
    RepoOptions,
    RepositoryError,
    validate_config_text,
    validate_repository,
    write_repository,
)
from pconv.trt.sidecar import EngineSidecar, sidecar_path


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repo") / "models"
    write_repository(default_onnx(), out, RepoOptions(instances=2, threads=1))
    return out


def test_repository_layout_and_configs_parse_with_tritons_protobuf(repo: Path) -> None:
    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == [
        "pconv", "pconv_ensemble", "pconv_post", "pconv_pre"
    ]  # fmt: skip
    assert (repo / "pconv" / "1" / "model.onnx").stat().st_size == default_onnx().stat().st_size
    net = parse(repo / "pconv" / "config.pbtxt")
    assert net.backend == "onnxruntime" and net.max_batch_size == 8
    assert [i.name for i in net.input] == ["image", "mask"] and list(net.input[1].dims) == [1, -1, -1]
    assert (
        net.instance_group[0].count == 2
        and net.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    )
    assert net.dynamic_batching.max_queue_delay_microseconds == 1000
    assert net.dynamic_batching.default_queue_policy.max_queue_size == 64
    params = {k: v.string_value for k, v in net.parameters.items()}
    assert params["intra_op_thread_count"] == "1"
    assert params[META_FORMAT] == "pconv-onnx-v1" and int(params[META_MULTIPLE]) == 64
    assert META_MASK in params and json.loads(params[META_CONFIG])["depth"] == 6
    assert net.model_warmup[0].inputs["image"].dims == [3, 64, 64]
    ensemble = parse(repo / "pconv_ensemble" / "config.pbtxt")
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["pconv_pre", "pconv", "pconv_post"]
    assert ensemble.input[0].data_type == model_config_pb2.TYPE_UINT8
    assert validate_repository(repo) == ["pconv", "pconv_ensemble", "pconv_post", "pconv_pre"]
    assert (
        "from pconv.serving.models.pre import TritonPythonModel"
        in (repo / "pconv_pre/1/model.py").read_text()
    )


GOOD = 'name: "m" backend: "python" max_batch_size: 4 input { name: "x" data_type: TYPE_FP32 dims: [3, -1] }'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: 'm' backend: 'python' inputz {}", "not a valid Triton model config"),  # unknown field
        (GOOD.replace("TYPE_FP32", "TYPE_FLOAT"), "not a valid Triton model config"),  # unknown enum
        (GOOD.replace('backend: "python"', ""), "neither backend nor platform"),
        (GOOD.replace("data_type: TYPE_FP32", ""), "has no data_type"),
        (GOOD.replace("[3, -1]", "[3, 0]"), "has dims"),
        (
            GOOD.replace("max_batch_size: 4", "max_batch_size: 0") + " dynamic_batching {}",
            "needs max_batch_size",
        ),
        (
            'name: "e" platform: "ensemble" input { name: "a" data_type: TYPE_UINT8 dims: [-1] } '
            'output { name: "z" data_type: TYPE_UINT8 dims: [-1] } ensemble_scheduling { step { '
            'model_name: "m" model_version: -1 input_map { key: "x" value: "b" } '
            'output_map { key: "y" value: "z" } } }',
            "reads ['b'] before any step writes them",
        ),
    ],
)
def test_invalid_configs_are_caught(text: str, problem: str) -> None:
    validate_config_text(GOOD)
    with pytest.raises(RepositoryError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        validate_config_text(text)


def test_repository_checks_across_models(repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "models"
    for path in repo.glob("*/config.pbtxt"):
        if path.parent.name != "pconv_post":
            (broken / path.parent.name).mkdir(parents=True)
            (broken / path.parent.name / "config.pbtxt").write_text(path.read_text())
    with pytest.raises(RepositoryError, match="'pconv_post' is not in the repository"):
        validate_repository(broken)
    with pytest.raises(RepositoryError, match="not empty"):
        write_repository(default_onnx(), repo)


def _fake_engine(tmp_path: Path, **changes: object) -> Path:
    """An engine file (bytes are never read without TensorRT) with a sidecar as pconv build writes."""
    import onnxruntime as ort

    meta = dict(ort.InferenceSession(str(default_onnx())).get_modelmeta().custom_metadata_map)
    fields: dict[str, object] = dict(
        onnx_metadata=meta, tensorrt_version="10.13.0", gpu_name="test", compute_capability=(8, 9),
        profile_min=(1, 64, 64), profile_opt=(4, 256, 256), profile_max=(6, 1024, 1024),
        io_dtypes={"image": "float16", "mask": "float16"}, precision="fp16", strongly_typed=True,
    )  # fmt: skip
    fields.update(changes)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not read")
    sidecar_path(engine).write_text(EngineSidecar(**fields).to_json())  # type: ignore[arg-type]
    return engine


def test_engine_repository_uses_the_tensorrt_profile(tmp_path: Path) -> None:
    engine = _fake_engine(
        tmp_path, version_compatible=True, plugin_layers=("enc1",), plugin_serialized=True,
        plugin_library="libpconv_plugin.so",
    )  # fmt: skip
    summary = write_repository(engine, tmp_path / "repo", RepoOptions(kind="gpu", max_batch=16))
    net = parse(tmp_path / "repo" / "pconv" / "config.pbtxt")
    assert net.platform == "tensorrt_plan" and net.max_batch_size == 6  # the profile's max N wins
    assert net.input[0].data_type == model_config_pb2.TYPE_FP16
    assert list(net.model_warmup[0].inputs["image"].dims) == [3, 256, 256]  # the profile's opt
    assert (tmp_path / "repo" / "pconv" / "1" / "model.plan").exists()
    assert any("version-compatible=true" in note for note in summary["notes"])


def test_plugin_engine_that_does_not_carry_its_plugin_is_refused(tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path, plugin_layers=("enc1",), plugin_library="libpconv_plugin.so")
    with pytest.raises(RepositoryError, match="pconv build --version-compatible"):
        write_repository(engine, tmp_path / "repo")


def test_triton_repo_cli_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pconv", "triton-repo", "default", "-o", str(tmp_path / "r"), "--json",
         "--instances", "3", "--no-ensemble"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["models"] == ["pconv"] and summary["backend"] == "onnxruntime"
    assert parse(tmp_path / "r" / "pconv" / "config.pbtxt").instance_group[0].count == 3
    again = subprocess.run(
        [sys.executable, "-m", "pconv", "triton-repo", "default", "-o", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2 and "not empty" in again.stderr and len(again.stderr.splitlines()) == 1


def test_server_addresses() -> None:
    a = parse_address("grpc://127.0.0.1:9001/pconv?timeout=5&retries=0")
    assert (a.protocol, a.host, a.port, a.model, a.timeout, a.retries) == (
        "grpc",
        "127.0.0.1",
        9001,
        "pconv",
        5,
        0,
    )
    assert (
        parse_address("http://example/m/2").port == 8000
        and parse_address("http://example/m/2").version == "2"
    )
    assert parse_address("grpc://h/m").shm == "" and parse_address("http://h/m?shm=system").shm == "system"
    for bad in (
        "grpc://127.0.0.1:8001",
        "ftp://h/m",
        "grpc://h/m?speed=1",
        "grpc://h/m?timeout=-1",
        "grpc://h/m?shm=cuda",
    ):
        with pytest.raises(ModelLoadError, match="grpc://HOST:PORT/MODEL"):
            parse_address(bad)


def test_unreachable_server_is_one_line_naming_the_fix() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    for protocol in ("grpc", "http"):
        with pytest.raises(ServerUnavailableError, match="pconv serve") as info:
            TritonBackend(f"{protocol}://127.0.0.1:{port}/pconv?retries=1&timeout=5")
        assert "\n" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


def test_inpainter_threads_sets_the_onnxruntime_session() -> None:
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:30, 20:50] = 1
    with Inpainter("default", threads=1) as one:
        assert one.backend.session.get_session_options().intra_op_num_threads == 1  # type: ignore[attr-defined]
        result = one(image, mask)
    with Inpainter("default") as default:
        assert np.array_equal(default(image, mask), result)
    with pytest.raises(ModelLoadError, match="threads must be >= 1"):
        Inpainter("default", threads=0)


def test_serving_environment_applies_the_libpython_fix_and_names_the_setup(tmp_path: Path) -> None:
    import os

    from pconv.serving import environment

    with pytest.raises(environment.ServeEnvironmentError, match="pconv serve --setup"):
        environment.find_install(tmp_path / "nothing")
    install = environment.TritonInstall(tmp_path / "triton")
    env = environment.server_env(install, base={"LD_LIBRARY_PATH": "/elsewhere"})
    first, *rest = env["LD_LIBRARY_PATH"].split(os.pathsep)
    libdir = environment.libpython_dir()
    assert first == str(libdir if libdir is not None else install.libs)  # this interpreter's libpython first
    assert rest[-1] == "/elsewhere" and str(install.libs) in [*rest, first]
    import site

    assert site.getsitepackages()[0] in env[environment.SITE_ENV].split(os.pathsep)  # its .pth files too
    assert set(env[environment.PATH_ENV].split(os.pathsep)) <= set(sys.path)


def _fixed_facts(n: int = 1, hw: int = 128) -> ModelFacts:
    """The shipped model's facts as a fixed-shape export has them (fixed_shape set, min/max None)."""
    import dataclasses

    from pconv.serving.repository import read_model

    facts = read_model(default_onnx())
    info = dataclasses.replace(facts.info, fixed_shape=(n, hw, hw), min_shape=None, max_shape=None)
    return dataclasses.replace(facts, info=info, dynamic_batch=False, warmup_hw=(hw, hw))


def _params(config: dict[str, Any]) -> dict[str, str]:
    return {k: v["string_value"] for k, v in config["parameters"].items()}


def test_fixed_shape_reaches_the_client_and_the_pre_step() -> None:
    """A fixed-shape export: its NxHxW is written, the client's ModelInfo and the ensemble's pre step
    both read it (one helper), and the pre step pads a small image to it, not to the multiple only."""
    from pconv.runtime.triton_backend import shape_limits
    from pconv.serving.models import model_info
    from pconv.serving.models.pre import network_inputs
    from pconv.serving.repository import network_config, step_configs

    facts = _fixed_facts()
    net = network_config(facts, RepoOptions(), "onnxruntime")
    assert net["max_batch_size"] == 0 and net["input"][0]["dims"] == [1, 3, 128, 128]
    params = _params(net)
    assert params["pconv_fixed_shape"] == "1x128x128"
    assert shape_limits(params)["fixed_shape"] == (1, 128, 128)
    pre_params = _params(step_configs(facts, RepoOptions())[0])
    info = model_info(pre_params, "pconv_pre")
    assert info.fixed_shape == (1, 128, 128)
    image, mask = np.zeros((50, 60, 3), np.uint8), np.zeros((50, 60), np.uint8)
    net_image, net_mask = network_inputs(image, mask, info)
    assert net_image.shape == (1, 3, 128, 128) and net_mask.shape == (1, 1, 128, 128)


def test_a_fixed_batch_above_one_cannot_sit_in_the_ensemble() -> None:
    """The ensemble sends batch 1: a fixed batch-2 export is refused in one line naming --no-ensemble,
    and without the ensemble its network config keeps the fixed batch."""
    from pconv.serving.options import RepositoryError
    from pconv.serving.repository import network_config, step_configs

    facts = _fixed_facts(n=2)
    with pytest.raises(RepositoryError, match=r"fixed batch of 2.*--no-ensemble"):
        step_configs(facts, RepoOptions())
    net = network_config(facts, RepoOptions(ensemble=False), "onnxruntime")
    assert net["max_batch_size"] == 0 and net["input"][0]["dims"] == [2, 3, 128, 128]
    assert len(step_configs(_fixed_facts(n=1), RepoOptions())) == 3  # batch 1 still gets its ensemble


def test_client_reads_the_shape_limits_and_caps_the_batch() -> None:
    from pconv.runtime.triton_backend import shape_limits

    params = {"pconv_min_shape": "1x64x64", "pconv_max_shape": "16x1024x2048"}
    assert shape_limits(params, 8) == {
        "min_shape": (1, 64, 64),
        "max_shape": (8, 1024, 2048),
        "fixed_shape": None,
    }
    assert shape_limits({}, 4)["max_shape"] == (4, 1 << 30, 1 << 30)  # an older repository: unbounded
    with pytest.raises(ModelLoadError, match=r"pconv_max_shape.*regenerate"):
        shape_limits({"pconv_max_shape": "8x64"})
    backend = TritonBackend.__new__(TritonBackend)
    backend.address = parse_address("grpc://127.0.0.1:1/pconv")
    net = network_config_for_client()
    info = backend._check_contract(net)
    assert info.min_shape == (1, 64, 64) and info.max_shape is not None and info.max_shape[0] == 8


def network_config_for_client() -> dict[str, Any]:
    """The network config of the shipped model as the client reads it (JSON form, min 1x64x64)."""
    import dataclasses

    from pconv.serving.repository import network_config, read_model

    facts = read_model(default_onnx())
    info = dataclasses.replace(facts.info, min_shape=(1, 64, 64), max_shape=(16, 4096, 4096))
    return network_config(dataclasses.replace(facts, info=info), RepoOptions(max_batch=8), "python")


def test_warmup_of_an_unbatched_model_uses_its_fixed_batch() -> None:
    from pconv.serving.repository import network_config

    net = network_config(_fixed_facts(n=2), RepoOptions(), "onnxruntime")
    assert net["input"][0]["dims"][0] == 2
    assert net["model_warmup"][0]["inputs"]["image"]["dims"] == [2, 3, 128, 128]


def test_instances_zero_is_a_one_line_error_not_the_default(tmp_path: Path) -> None:
    for command in (["triton-repo", "default", "-o", str(tmp_path / "r")], ["serve", "default"]):
        done = subprocess.run(
            [sys.executable, "-m", "pconv", *command, "--instances", "0"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"pconv {command[0]}: error: --instances must be >= 1; got 0"
        ]
    assert not (tmp_path / "r").exists()


def test_serve_and_triton_repo_flags_come_from_the_options_dataclasses() -> None:
    """Each default stated once: the parsed flags give the dataclasses' own defaults."""
    import argparse

    from pconv.cliopts import from_args
    from pconv.serving.cli import register
    from pconv.serving.options import ServeOptions, ServeRepoOptions, default_instances

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    serve = parser.parse_args(["serve"])
    options = from_args(ServeOptions, serve, repo=from_args(ServeRepoOptions, serve))
    assert options == ServeOptions()
    assert options.repo.backend == "python" and options.repo.link_model
    assert options.repo.instances == default_instances()
    # serve: no queue delay (measured: 1 ms held every request at concurrency 1 for no extra batching
    # on CPU); triton-repo keeps 1 ms for the NGC container, where larger batches pay on a GPU
    assert options.repo.queue_delay_us == 0 and RepoOptions().queue_delay_us == 1000
    repo = parser.parse_args(["triton-repo", "default", "-o", "x", "--no-ensemble", "--max-queue", "0"])
    assert from_args(RepoOptions, repo) == RepoOptions(ensemble=False, max_queue=0)
    assert RepoOptions().instances == 1 and RepoOptions().backend == "auto"


class _FakeServerError(Exception):
    """tritonclient's InferenceServerException as the backend sees it (a message and a status)."""

    def __init__(self, msg: str, status: str) -> None:
        super().__init__(msg)
        self._status = status

    def status(self) -> str:
        return self._status

    def message(self) -> str:
        return str(self)


def _fake_client_module(fail: dict[str, _FakeServerError], closed: list[bool]) -> Any:
    """A stand-in for ``tritonclient.grpc`` whose client raises ``fail[method]``."""

    class Client:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            def call(*args: object, **kwargs: object) -> object:
                if name in fail:
                    raise fail[name]
                return True

            return call

        def close(self) -> None:
            closed.append(True)

    return types.SimpleNamespace(InferenceServerClient=Client, InferenceServerException=_FakeServerError)


def test_a_refused_model_config_is_one_line_and_closes_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv.runtime.triton_backend as tb

    closed: list[bool] = []
    refused = _FakeServerError("model 'pconv'\nis not permitted", "StatusCode.PERMISSION_DENIED")
    monkeypatch.setattr(
        tb, "import_client", lambda _: _fake_client_module({"get_model_config": refused}, closed)
    )
    with pytest.raises(ModelLoadError, match="refused model 'pconv'") as info:
        TritonBackend("grpc://127.0.0.1:1/pconv")
    assert "\n" not in str(info.value) and closed == [True]
    slow = _FakeServerError("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED")
    monkeypatch.setattr(
        tb, "import_client", lambda _: _fake_client_module({"get_model_config": slow}, closed)
    )
    with pytest.raises(ServerUnavailableError, match=r"timeout=SECONDS"):
        TritonBackend("grpc://127.0.0.1:1/pconv?timeout=2")
    assert closed == [True, True]


def test_a_client_timeout_is_not_reported_as_a_rejected_batch() -> None:
    slow = _FakeServerError("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED")
    backend = TritonBackend.__new__(TritonBackend)
    backend.address = parse_address("grpc://127.0.0.1:1/pconv?timeout=3&retries=0")
    backend.headers = {}
    backend.info = network_info()
    backend.output_names = ["output"]
    backend._module = _fake_client_module({"infer": slow}, [])
    backend._module.InferInput = lambda *a: types.SimpleNamespace(set_data_from_numpy=lambda x: None)
    backend._module.InferRequestedOutput = lambda n: n
    backend.client = backend._module.InferenceServerClient()
    image, mask = np.zeros((1, 3, 64, 64), np.float32), np.ones((1, 1, 64, 64), np.float32)
    with pytest.raises(ServerUnavailableError, match=r"within 3 s.*\?timeout=SECONDS") as info:
        backend.run(image, mask)
    assert "rejected" not in str(info.value)


def network_info() -> ModelInfo:
    from pconv.serving.repository import read_model

    return read_model(default_onnx()).info


def test_gpu_kind_takes_the_tensorrt_precision_from_the_export() -> None:
    import dataclasses

    from pconv.contract import META_PRECISION
    from pconv.serving.repository import network_config, read_model

    facts = read_model(default_onnx())

    def precision(value: str) -> str:
        meta = {**facts.metadata, META_PRECISION: value}
        config = network_config(
            dataclasses.replace(facts, metadata=meta), RepoOptions(kind="gpu"), "onnxruntime"
        )
        accelerator = config["optimization"]["execution_accelerators"]["gpu_execution_accelerator"][0]
        return str(accelerator["parameters"]["precision_mode"])

    assert (precision("fp32"), precision("fp16"), precision("int8")) == ("FP32", "FP16", "FP32")


def test_a_server_url_refuses_threads_and_a_local_backend() -> None:
    from pconv.runtime import ServerBusyError, ServerUnavailableError  # exported with the others

    assert issubclass(ServerUnavailableError, ModelLoadError) and ServerBusyError.__name__
    url = "grpc://127.0.0.1:1/pconv?retries=0"
    with pytest.raises(ModelLoadError, match=r"pconv serve --threads") as info:
        Inpainter(url, threads=2)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelLoadError, match="leave backend 'auto'"):
        Inpainter(url, backend="onnxruntime")
    with pytest.raises(ModelLoadError, match="backend must be one of"):
        Inpainter(str(default_onnx()), backend="triton")  # not a backend name: the URL scheme decides


def test_an_install_without_the_python_backend_names_the_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pconv.serving import environment

    install = environment.TritonInstall(tmp_path / "triton")
    for path in (install.binary, install.stub()):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    with pytest.raises(environment.ServeEnvironmentError, match=r"no python backend.*pconv serve --setup"):
        install.check()
    commands: list[list[str]] = []

    def run(command: list[str], check: bool) -> object:
        commands.append(command)
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(environment.subprocess, "run", run)
    with pytest.raises(environment.ServeEnvironmentError, match="failed"):
        environment.setup(install.root, quiet=True)
    assert "--upgrade" in commands[0] and "--no-deps" in commands[0]  # repairs a partial --target install


def test_serving_an_engine_names_what_serve_can_do(tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path)
    with pytest.raises(RepositoryError, match=r"pconv triton-repo model\.engine") as info:
        write_repository(engine, tmp_path / "repo", RepoOptions(backend="python"))
    assert "--backend" not in str(info.value)


def test_repository_files_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv.serving.repository as repository

    written: list[str] = []
    real = repository.atomic_write

    def recording(path: Path, write: Callable[[str], object]) -> Path:
        written.append(Path(path).relative_to(tmp_path / "r").as_posix())
        return real(path, write)

    monkeypatch.setattr(repository, "atomic_write", recording)
    write_repository(default_onnx(), tmp_path / "r", RepoOptions(backend="python"))
    assert {"pconv/config.pbtxt", "pconv/1/model.py", "pconv_pre/1/model.py", "pconv_repository.json"} <= set(
        written
    )
    assert not list((tmp_path / "r").rglob("*.tmp"))
