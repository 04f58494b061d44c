"""pconv.metadata: the one reader and check of a pconv model's ONNX metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pconv.contract import MASK_CONVENTION, META_CONFIG, META_FORMAT, META_MULTIPLE, ONNX_FORMAT
from pconv.errors import ModelLoadError, PconvError
from pconv.metadata import parse_metadata, read_onnx_metadata
from pconv.models import DEFAULT_ONNX

GOOD = {META_FORMAT: ONNX_FORMAT, META_MULTIPLE: "16", META_CONFIG: json.dumps({"depth": 4})}


class _OtherError(PconvError):
    pass


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_reads_the_same_pairs_as_the_onnx_package(tiny_onnx_factory, form: str) -> None:
    onnx = pytest.importorskip("onnx")
    path = tiny_onnx_factory(form=form)
    expected = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert read_onnx_metadata(path) == expected
    facts = parse_metadata(expected, path)
    assert facts.form == form and facts.size_multiple == int(expected[META_MULTIPLE])
    assert facts.raw == expected and facts.config == json.loads(expected[META_CONFIG])


def test_reads_a_model_without_metadata_and_with_many_entries(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph([], "g", [], [])
    bare = tmp_path / "bare.onnx"
    onnx.save(onnx.helper.make_model(graph), str(bare))
    assert read_onnx_metadata(bare) == {}
    model = onnx.helper.make_model(graph)
    pairs = {f"k{i}": "é" * i for i in range(200)}  # multi-byte lengths and UTF-8 values
    onnx.helper.set_model_props(model, pairs)
    many = tmp_path / "many.onnx"
    onnx.save(model, str(many))
    assert read_onnx_metadata(many) == pairs


def test_needs_no_onnx_package() -> None:
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
        "from pconv.metadata import read_onnx_metadata, parse_metadata\n"
        f"meta = read_onnx_metadata({str(DEFAULT_ONNX)!r})\n"
        "print(parse_metadata(meta, 'default').size_multiple)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert int(out) >= 2


def test_files_that_are_not_onnx_are_refused_with_the_callers_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("hello, this is not a protobuf\n")
    with pytest.raises(ModelLoadError, match="not a readable ONNX model"):
        read_onnx_metadata(text)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(DEFAULT_ONNX.read_bytes()[:1000])
    with pytest.raises(_OtherError, match="not a readable ONNX model"):
        read_onnx_metadata(truncated, error=_OtherError)
    with pytest.raises(ModelLoadError, match="cannot read"):
        read_onnx_metadata(tmp_path / "missing.onnx")


def test_parse_checks_format_multiple_config_and_mask_convention() -> None:
    facts = parse_metadata(GOOD, "m.onnx")
    assert (facts.size_multiple, facts.mask_convention, facts.precision) == (16, MASK_CONVENTION, "fp32")
    with pytest.raises(ModelLoadError, match=r"m.onnx is not a pconv model \(it has no 'pconv_format'"):
        parse_metadata({}, "m.onnx")
    with pytest.raises(ModelLoadError, match="its 'pconv_format' is 'pconv-checkpoint-v1'"):
        parse_metadata({**GOOD, META_FORMAT: "pconv-checkpoint-v1"}, "m.onnx")
    with pytest.raises(ModelLoadError, match=r"damaged pconv metadata in the sidecar.*rebuild the engine"):
        parse_metadata({**GOOD, META_MULTIPLE: "x"}, "m.engine", origin="engine")
    with pytest.raises(ModelLoadError, match="damaged pconv metadata"):
        parse_metadata({**GOOD, META_CONFIG: "{not json"}, "m.onnx")
    no_config = {k: v for k, v in GOOD.items() if k != META_CONFIG}
    assert parse_metadata(no_config, "m.onnx").config == {}
    with pytest.raises(_OtherError, match="pconv_config"):
        parse_metadata(no_config, "m.onnx", require_config=True, error=_OtherError)
    with pytest.raises(ModelLoadError, match="mask convention '1=hole'"):
        parse_metadata({**GOOD, "pconv_mask_convention": "1=hole"}, "m.onnx")
