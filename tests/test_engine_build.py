"""The engine builder's steps and orchestration, driven by a stand-in ``tensorrt`` module.

These are *not* TensorRT checks: the fake module below implements only the calls pconv makes, with
the behaviour pconv relies on (a parser that maps PartialConv2d nodes to plugin layers once the
library is registered, a builder config that keeps flags and a timing cache, a serialized plan).
They check pconv's side of the contract: which calls are made with which flags, what is written
(engine, sidecar, timing cache), what the report says and which errors are raised. Real engines
are built by the GPU-gated tests in ``test_tensorrt.py`` (``pytest -m tensorrt``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pconv.apps.cli import main as cli_main
from pconv.engine import build, network, plugin, timing_cache
from pconv.engine.build import STEPS, BuildOptions, Gpu, build_engine
from pconv.engine.errors import BuildError
from pconv.engine.facts import read_onnx_facts
from pconv.engine.network import Typing
from pconv.engine.profile import Profile
from pconv.errors import OptionError
from pconv.trt.sidecar import EngineSidecar, sidecar_path


# -- the stand-in module ---------------------------------------------------------------------------
class FakeCache:
    """A timing cache as a set of entries; serialized as sorted JSON so files can be compared."""

    def __init__(self, entries: set[str] | None = None) -> None:
        self.entries = set(entries or ())

    @classmethod
    def load(cls, data: bytes) -> FakeCache:
        if not data:
            return cls()
        if not data.startswith(b"["):
            raise RuntimeError("not a timing cache")
        return cls(set(json.loads(data)))

    def combine(self, input_cache: FakeCache, ignore_mismatch: bool) -> bool:
        self.entries |= input_cache.entries
        return True

    def serialize(self) -> bytes:
        return json.dumps(sorted(self.entries)).encode()


class Layer:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.type = name, kind


class Tensor:
    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype = name, dtype


def make_fake_trt(version: str = "10.13.0.35", **behaviour: Any) -> types.ModuleType:
    """A ``tensorrt`` stand-in; ``behaviour`` switches failures on (see the attributes read below)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    state: dict[str, Any] = {"registered": False, "builders": [], **behaviour}
    trt.state = state  # type: ignore[attr-defined]

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            pass

    class Registry:
        def get_creator(self, name: str, version: str, namespace: str) -> object | None:
            return object() if state["registered"] else None

        def load_library(self, path: str) -> object:
            state["registered"] = True
            state["loaded"] = path
            return object()

    registry = Registry()

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.layers: list[Layer] = []
            self.inputs: list[Tensor] = []
            self.outputs: list[Tensor] = []

        num_layers = property(lambda self: len(self.layers))
        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_layer(self, i: int) -> Layer:
            return self.layers[i]

        def get_input(self, i: int) -> Tensor:
            return self.inputs[i]

        def get_output(self, i: int) -> Tensor:
            return self.outputs[i]

    class ParserError:
        def desc(self) -> str:
            return "No importer registered for op: Frobnicate"

        def node_name(self) -> str:
            return "enc1/frob"

        def node_operator(self) -> str:
            return "Frobnicate"

    class OnnxParser:
        """Reads the ONNX's I/O and nodes; PartialConv2d nodes become plugin layers once registered."""

        def __init__(self, net: Network, logger: Any) -> None:
            self.net = net
            self.errors: list[ParserError] = []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

        def parse_from_file(self, path: str) -> bool:
            import onnx

            if state.get("parse_fails"):
                self.errors.append(ParserError())
                return False
            graph = onnx.load(path, load_external_data=False).graph
            dtype = {1: "float", 10: "half"}
            self.net.inputs = [Tensor(v.name, dtype[v.type.tensor_type.elem_type]) for v in graph.input]
            self.net.outputs = [Tensor(v.name, dtype[v.type.tensor_type.elem_type]) for v in graph.output]
            as_plugin = state["registered"] and not state.get("parser_inlines")
            for node in graph.node:
                kind = "plugin_v3" if node.op_type == "PartialConv2d" and as_plugin else "other"
                self.net.layers.append(Layer(node.name, kind))
            return True

    class Config:
        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.cleared: set[str] = set()
            self.pools: dict[str, int] = {}
            self.profiles: list[dict[str, tuple[Any, ...]]] = []
            self.plugins_to_serialize: list[str] = []
            self.cache: FakeCache | None = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.pools[pool] = size

        def set_flag(self, flag: str) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag: str) -> None:
            self.cleared.add(flag)

        def add_optimization_profile(self, profile: Profile_) -> int:
            self.profiles.append(profile.shapes)
            return -1 if state.get("profile_rejected") else 0

        def create_timing_cache(self, data: bytes) -> FakeCache:
            return FakeCache.load(bytes(data))

        def set_timing_cache(self, cache: FakeCache, ignore_mismatch: bool) -> bool:
            self.cache = cache
            return True

        def get_timing_cache(self) -> FakeCache | None:
            return self.cache

    class Profile_:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[Any, ...]] = {}

        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            self.shapes[name] = (lo, opt, hi)

    class Builder:
        def __init__(self, logger: Any) -> None:
            state["builders"].append(self)
            self.network: Network | None = None
            self.config: Config | None = None

        def create_network(self, flags: int) -> Network:
            self.network = Network(flags)
            return self.network

        def create_builder_config(self) -> Config:
            self.config = Config()
            return self.config

        def create_optimization_profile(self) -> Profile_:
            return Profile_()

        def build_serialized_network(self, net: Network, config: Config) -> bytes | None:
            if state.get("build_fails"):
                return None
            if config.cache is not None:  # the tactics this build timed
                config.cache.entries.add(f"tactic-{state.get('tactic', 'a')}")
            return b"PLAN:" + ",".join(sorted(config.flags)).encode()

    trt.ILogger = ILogger  # type: ignore[attr-defined]
    trt.Builder = Builder  # type: ignore[attr-defined]
    trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
    trt.get_plugin_registry = lambda: registry  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=5)  # type: ignore[attr-defined]
    flags = {"FP16": "FP16", "INT8": "INT8", "TF32": "TF32", "VERSION_COMPATIBLE": "VERSION_COMPATIBLE"}
    if version.startswith("11."):
        del flags["FP16"]
    trt.BuilderFlag = types.SimpleNamespace(**flags)  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")  # type: ignore[attr-defined]
    trt.LayerType = types.SimpleNamespace(PLUGIN_V3="plugin_v3", CONVOLUTION="other")  # type: ignore[attr-defined]
    trt.Dims = tuple  # type: ignore[attr-defined]
    trt.nptype = {"float": np.float32, "half": np.float16}.__getitem__  # type: ignore[attr-defined]
    return trt


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install a fresh stand-in as ``tensorrt`` and a fake GPU; yields the module to adjust."""
    trt = make_fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(build, "find_gpu", lambda device: Gpu("Fake GPU", (9, 0)))
    yield trt


def _config(trt: Any) -> Any:
    return trt.state["builders"][-1].config


# -- the whole build, step by step -------------------------------------------------------------------
def test_build_writes_engine_sidecar_and_a_report_composed_of_the_sidecar(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path
) -> None:
    engine = tmp_path / "out" / "m.engine"
    report = build_engine(tiny_onnx_factory(), engine, opt_shape=(2, 64, 64), use_default_plugin=False)
    assert engine.read_bytes() == b"PLAN:"  # strongly typed FP32: no precision flags
    sidecar = EngineSidecar.from_json(sidecar_path(engine).read_text())
    assert sidecar == report.sidecar and report.sidecar_path == sidecar_path(engine)
    assert sidecar.engine_bytes == len(b"PLAN:") and sidecar.gpu_name == "Fake GPU"
    assert sidecar.profile_opt == (2, 64, 64) and sidecar.precision == "fp32" and sidecar.strongly_typed
    assert sidecar.io_dtypes == {
        "image": "float32",
        "mask": "float32",
        "output": "float32",
        "composite": "float32",
    }
    assert report.profile == Profile((2, 64, 64), (2, 64, 64), (2, 64, 64))
    assert report.plugin_layers == () and report.plugin_library is None and report.warnings == []
    config = _config(fake_trt)
    assert fake_trt.state["builders"][-1].network.flags == 1 << 5  # STRONGLY_TYPED on 10.x
    assert config.pools == {"WORKSPACE": 4 * 2**30} and config.cleared == {"TF32"}
    assert config.profiles == [
        {"image": ((2, 3, 64, 64),) * 3, "mask": ((2, 1, 64, 64),) * 3},
    ]
    assert report.to_dict()["tensorrt_version"] == "10.13.0.35"


def test_plugin_form_loads_the_library_before_parsing_and_reports_the_plugin_layers(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path
) -> None:
    library = tmp_path / "libpconv_plugin.so"
    library.write_bytes(b"\x7fELF")
    engine = tmp_path / "m.engine"
    report = build_engine(
        tiny_onnx_factory(form="plugin"),
        engine,
        opt_shape=(1, 32, 32),
        plugin_library=library,
        version_compatible=True,
    )
    assert fake_trt.state["loaded"] == str(library.resolve())
    assert len(report.plugin_layers) == 6 and report.plugin_library == library.resolve()
    assert _config(fake_trt).plugins_to_serialize == [str(library.resolve())]
    sidecar = report.sidecar
    assert sidecar.plugin_library == library.name and sidecar.plugin_serialized and sidecar.version_compatible
    assert "6 of " in report.summary() and "pconv::PartialConv2d" in report.summary()


def test_a_parser_that_inlines_the_plugin_nodes_is_reported(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path
) -> None:
    fake_trt.state["parser_inlines"] = True
    library = tmp_path / "lib.so"
    library.write_bytes(b"x")
    report = build_engine(
        tiny_onnx_factory(form="plugin"), tmp_path / "m.engine", opt_shape=(1, 32, 32), plugin_library=library
    )
    assert report.plugin_layers == () and report.plugin_library is None
    assert report.sidecar.extra == {} and report.sidecar.plugin_library is None
    assert any("only 0 of 6 PartialConv2d nodes became the plugin" in w for w in report.warnings)


def test_fp16_builder_flag_is_weakly_typed_on_10_and_refused_on_11(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = build_engine(tiny_onnx_factory(), tmp_path / "a.engine", opt_shape=(1, 32, 32), fp16_flag=True)
    assert report.precision == "fp16-flag" and not report.strongly_typed
    assert _config(fake_trt).flags == {"FP16"} and fake_trt.state["builders"][-1].network.flags == 0
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt("11.0.0.1"))
    with pytest.raises(BuildError, match="no FP16 builder flag"):
        build_engine(tiny_onnx_factory(), tmp_path / "b.engine", opt_shape=(1, 32, 32), fp16_flag=True)
    assert not (tmp_path / "b.engine").exists()


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (
            "parse_fails",
            r"(?s)cannot parse .*node 'enc1/frob' \(Frobnicate\): No importer.*\nhint: check that",
        ),
        ("profile_rejected", r"rejected the profile min 1x32x32"),
        ("build_fails", r"could not build the engine.*--workspace"),
    ],
)
def test_tensorrt_failures_are_one_build_error_and_write_nothing(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path, behaviour: str, message: str
) -> None:
    fake_trt.state[behaviour] = True
    with pytest.raises(BuildError, match=message):
        build_engine(tiny_onnx_factory(), tmp_path / "m.engine", opt_shape=(1, 32, 32))
    assert list(tmp_path.iterdir()) == []


def test_timing_cache_is_created_then_read_and_a_damaged_one_replaced(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "trt.cache"
    onnx_path = tiny_onnx_factory()
    first = build_engine(onnx_path, tmp_path / "a.engine", opt_shape=(1, 32, 32), timing_cache=cache)
    assert first.timing_cache == cache and first.timing_cache_note == "created"
    assert json.loads(cache.read_bytes()) == ["tactic-a"]
    fake_trt.state["tactic"] = "b"
    second = build_engine(onnx_path, tmp_path / "b.engine", opt_shape=(1, 32, 32), timing_cache=cache)
    assert second.timing_cache_note == "read and updated" and json.loads(cache.read_bytes()) == [
        "tactic-a",
        "tactic-b",
    ]
    assert f"cache      {cache} (read and updated)" in second.summary()
    cache.write_bytes(b"garbage")
    third = build_engine(onnx_path, tmp_path / "c.engine", opt_shape=(1, 32, 32), timing_cache=cache)
    assert third.timing_cache_note == "replaced (incompatible)" and "damaged" in third.warnings[0]
    assert json.loads(cache.read_bytes()) == ["tactic-b"]


def test_progress_callback_hears_every_step_in_order(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path
) -> None:
    calls: list[tuple[int, int, str]] = []
    build_engine(
        tiny_onnx_factory(), tmp_path / "m.engine", opt_shape=(1, 32, 32), progress=lambda *a: calls.append(a)
    )
    total = len(STEPS)
    assert calls == [(i, total, text) for i, text in enumerate(STEPS)] + [(total, total, "done")]


class TtyStream(io.StringIO):
    """A stderr that claims to be a terminal, where the old builder drew its bar."""

    def isatty(self) -> bool:
        return True


def test_build_without_a_progress_callback_writes_nothing_to_stderr(
    fake_trt: Any,
    tiny_onnx_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    onnx_path = tiny_onnx_factory()
    capfd.readouterr()
    stderr = TtyStream()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # importing tqdm would now raise
    build_engine(onnx_path, tmp_path / "a.engine", opt_shape=(1, 32, 32))
    build_engine(onnx_path, tmp_path / "b.engine", opt_shape=(1, 32, 32), progress=True)  # the old switch
    assert stderr.getvalue() == "" and capfd.readouterr().err == ""


def test_cli_supplies_a_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from pconv.engine.cli import step_bar

    with step_bar(wanted=True) as progress:  # pytest's stderr is not a terminal
        assert progress is None
    stderr = TtyStream()
    monkeypatch.setattr(sys, "stderr", stderr)
    with step_bar(wanted=False) as progress:
        assert progress is None
    with step_bar(wanted=True) as progress:
        assert progress is not None
        progress(3, len(STEPS), "configuring")
    assert "pconv build" in stderr.getvalue() and "configuring" in stderr.getvalue()


def test_cli_json_output_with_the_stand_in(
    fake_trt: Any, tiny_onnx_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = tmp_path / "m.engine"
    argv = ["build", str(tiny_onnx_factory()), "-o", str(engine), "--opt", "1x32x32", "--no-plugin", "--json"]
    assert cli_main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["engine_path"] == str(engine) and data["gpu_name"] == "Fake GPU"
    assert data["profile"] == {"min": [1, 32, 32], "opt": [1, 32, 32], "max": [1, 32, 32]}
    assert data["engine_bytes"] == engine.stat().st_size and data["plugin_library"] is None


# -- single steps ----------------------------------------------------------------------------------
def test_options_are_checked_before_tensorrt(tiny_onnx_factory: Any, tmp_path: Path) -> None:
    facts = read_onnx_facts(tiny_onnx_factory(precision="fp16"))
    with pytest.raises(OptionError, match=r"^--workspace must be positive \(GiB\), got 0$"):
        BuildOptions(workspace_gib=0)
    with pytest.raises(BuildError, match=r"no\.so: no such file"):
        BuildOptions(plugin_library=tmp_path / "no.so").check(facts)
    with pytest.raises(BuildError, match="already an FP16 ONNX"):
        BuildOptions(fp16_flag=True).check(facts)
    assert BuildOptions(opt_shape=(1, 16, 16)).check(facts) == Profile((1, 16, 16), (1, 16, 16), (1, 16, 16))


@pytest.mark.parametrize(
    ("version", "precision", "fp16_flag", "expected"),
    [
        ((10, 13), "fp32", False, (True, False, False, "fp32")),
        ((10, 13), "fp32", True, (False, True, False, "fp16-flag")),
        ((10, 13), "int8", False, (False, False, True, "int8")),
        ((11, 0), "int8", False, (True, False, False, "int8")),
        ((11, 0), "fp16", False, (True, False, False, "fp16")),
    ],
)
def test_typing_follows_the_onnx_and_the_version(
    tiny_onnx_factory: Any,
    version: tuple[int, ...],
    precision: str,
    fp16_flag: bool,
    expected: tuple[Any, ...],
) -> None:
    facts = read_onnx_facts(tiny_onnx_factory())
    facts = dataclasses.replace(facts, precision=precision)
    typed = Typing.decide(version, facts, fp16_flag)
    assert (typed.strongly_typed, typed.fp16_flag, typed.int8_flag, typed.precision) == expected
    trt = make_fake_trt()
    assert network.creation_flags(trt, version, typed) == (
        1 << 5 if typed.strongly_typed and version[0] < 11 else 0
    )


def test_configure_sets_the_int8_flag_and_version_compatibility(tiny_onnx_factory: Any) -> None:
    trt = make_fake_trt()
    builder = trt.Builder(None)
    net = network.Network(network=None, parser=None, plugin_layers=(), num_layers=0, io_dtypes={})  # type: ignore[arg-type]
    typed = Typing(strongly_typed=False, fp16_flag=False, int8_flag=True, precision="int8")
    opts = BuildOptions(version_compatible=True, allow_tf32=True, workspace_gib=0.5)
    config = build.configure(
        trt, builder, net, typed, Profile((1, 8, 8), (1, 8, 8), (2, 8, 8)), opts, None, None
    )
    assert config.flags == {"INT8", "VERSION_COMPATIBLE"} and config.cleared == set()
    assert config.pools["WORKSPACE"] == 2**29 and config.plugins_to_serialize == []
    assert config.profiles[0]["mask"] == ((1, 1, 8, 8), (1, 1, 8, 8), (2, 1, 8, 8))


def test_plugin_choice_warns_when_the_plugin_cannot_be_used(
    tiny_onnx_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = read_onnx_facts(tiny_onnx_factory())
    plugin_form = read_onnx_facts(tiny_onnx_factory(form="plugin"))
    warnings: list[str] = []
    assert plugin.choose(explicit, tmp_path / "lib.so", True, warnings) is None
    assert "explicit form" in warnings.pop()
    monkeypatch.setattr(plugin, "find_library", lambda: None)
    assert plugin.choose(plugin_form, None, True, warnings) is None
    assert "no plugin library found" in warnings.pop()
    assert plugin.choose(plugin_form, None, False, warnings) is None and warnings == []
    assert plugin.choose(plugin_form, tmp_path / "lib.so", True, warnings) == tmp_path / "lib.so"


def test_io_must_be_pconvs_four_tensors(tiny_onnx_factory: Any) -> None:
    facts = read_onnx_facts(tiny_onnx_factory())
    trt = make_fake_trt()
    net = trt.Builder(None).create_network(0)
    net.inputs = [Tensor("image", "half"), Tensor("mask", "float")]
    net.outputs = [Tensor("output", "half")]
    with pytest.raises(BuildError, match=r"has I/O \['image', 'mask', 'output'\], expected"):
        network.io_dtypes(trt, facts, net)
    net.outputs.append(Tensor("composite", "half"))
    assert network.io_dtypes(trt, facts, net)["image"] == "float16"


# -- the timing cache under a lock ---------------------------------------------------------------
class SlowCache(FakeCache):
    """Serializing takes a while: the window in which an unlocked merge loses the other's entries."""

    def serialize(self) -> bytes:
        threading.Event().wait(0.3)
        return super().serialize()


def _merge_in_threads(path: Path, caches: list[FakeCache]) -> list[str]:
    """Each cache merges into ``path`` from its own thread; the second starts once the first is in."""
    warnings: list[str] = []
    first_inside = threading.Event()

    def merge(cache: FakeCache) -> None:
        timing_cache.merge_into_file(path, cache, FakeCache.load, b"", warnings)

    def first() -> None:
        original = caches[0].serialize

        def signalling() -> bytes:
            first_inside.set()
            return original()

        caches[0].serialize = signalling  # type: ignore[method-assign]
        merge(caches[0])

    threads = [threading.Thread(target=first), threading.Thread(target=merge, args=(caches[1],))]
    threads[0].start()
    assert first_inside.wait(10)
    threads[1].start()
    for t in threads:
        t.join(20)
    return warnings


def test_two_concurrent_merges_keep_both_builds_entries(tmp_path: Path) -> None:
    """flock locks open files, so two threads with their own open() exclude each other like processes."""
    path = tmp_path / "trt.cache"
    warnings = _merge_in_threads(path, [SlowCache({"a1", "a2"}), SlowCache({"b1"})])
    assert json.loads(path.read_bytes()) == ["a1", "a2", "b1"] and warnings == []
    assert timing_cache.lock_path(path).exists()  # left in place on purpose
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trt.cache", "trt.cache.lock"]


def test_without_the_lock_the_same_race_loses_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the scenario above really races, so the lock is what keeps both entries."""
    monkeypatch.setattr(timing_cache, "locked", lambda path: nullcontext())
    path = tmp_path / "trt.cache"
    barrier = threading.Barrier(2, timeout=10)

    class Racing(FakeCache):
        def serialize(self) -> bytes:
            barrier.wait()  # both have read the (empty) file before either writes
            return super().serialize()

    threads = [
        threading.Thread(
            target=timing_cache.merge_into_file, args=(path, Racing({x}), FakeCache.load, b"", [])
        )
        for x in ("a", "b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert json.loads(path.read_bytes()) in (["a"], ["b"])


def test_merge_reports_a_cache_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "trt.cache"
    path.write_bytes(b"written by something else")
    warnings: list[str] = []
    timing_cache.merge_into_file(path, FakeCache({"mine"}), FakeCache.load, b"", warnings)
    assert json.loads(path.read_bytes()) == ["mine"]
    assert warnings == ["could not merge the timing cache written by another build (not a timing cache)"]
