"""The plugin's field list: one Python definition, a generated C++ header, and the exported ONNX nodes.

The C++ plugin declares, parses and serialises its fields only through the X-macro of the
generated header, so checking the header against ``plugin_fields.FIELDS`` and checking that
``pconv_plugin.cpp`` spells no field list of its own covers the C++ side with a host compiler only; the
compiled library's declared fields are checked in test_plugin_library.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pconv import plugin_fields
from pconv.config import ModelConfig
from pconv.plugin_fields import FIELDS, attributes_for, render_header, validate
from pconv.plugins import plugin_source_dir
from pconv.plugins.gen_header import write_header

SRC = plugin_source_dir()


def test_generated_header_is_render_header(tmp_path: Path) -> None:
    out = tmp_path / "gen" / "generated_fields.h"
    subprocess.run([sys.executable, "-m", "pconv.plugins.gen_header", str(out)], check=True)
    assert out.read_text() == render_header()
    mtime = out.stat().st_mtime_ns
    write_header(out)  # unchanged content is not rewritten (keeps CMake builds incremental)
    assert out.stat().st_mtime_ns == mtime


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler (g++)")
def test_header_declares_exactly_the_python_fields(tmp_path: Path) -> None:
    """A C++ compiler reads the generated header and expands the list as the plugin does.

    Comparing the header's text with the list it was rendered from could not fail; compiling it
    catches a broken macro, a missing constant or a field the C++ side would see differently.
    """
    write_header(tmp_path / "generated_fields.h")
    program = tmp_path / "fields.cpp"
    program.write_text(
        '#include <cstdio>\n#include "generated_fields.h"\n'
        "int main() {\n"
        '#define X(name, type, length) std::printf("%s %s %d\\n", #name, #type, length);\n'
        "    PCONV_PLUGIN_FIELDS(X)\n"
        '    std::printf("%s %s %s %d %d\\n", pconv::kPluginName, pconv::kPluginNamespace, '
        "pconv::kPluginVersion, pconv::kNumFields, pconv::kMaxMaskChannels);\n"
        "}\n"
    )
    exe = tmp_path / "fields"
    subprocess.run(["g++", "-std=c++17", f"-I{tmp_path}", str(program), "-o", str(exe)], check=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    declared = [
        (name, trt_type, int(length)) for name, trt_type, length in (line.split() for line in lines[:-1])
    ]
    assert declared == [(f.name, f.trt_type, f.length or 0) for f in FIELDS]
    assert lines[-1].split() == [
        plugin_fields.PLUGIN_NAME,
        plugin_fields.PLUGIN_NAMESPACE,
        plugin_fields.PLUGIN_VERSION,
        str(len(FIELDS)),
        str(plugin_fields.MAX_MASK_CHANNELS),
    ]


def test_cpp_plugin_uses_the_generated_list_only() -> None:
    """Declaration, parsing, serialisation and the creator's list all expand PCONV_PLUGIN_FIELDS."""
    source = (SRC / "pconv_plugin.cpp").read_text()
    assert '#include "generated_fields.h"' in source
    assert source.count("PCONV_PLUGIN_FIELDS(") >= 5  # storage, count, parse, check, serialise, creator
    literals = set(re.findall(r'"(\w+)"', source))
    hand_written = sorted(literals & {f.name for f in FIELDS})
    assert not hand_written, f"field names spelled by hand in pconv_plugin.cpp: {hand_written}"
    for field in FIELDS:  # every field reaches the kernel parameters or the checks
        assert re.search(rf"\.{field.name}\b", source), f"{field.name} is never read by the plugin"


def test_kernel_header_limits_match_python() -> None:
    kernels = (SRC / "pconv_kernels.cuh").read_text()
    match = re.search(r"#define PCONV_MAX_MASK_CHANNELS (\d+)", kernels)
    assert match is not None and int(match.group(1)) == plugin_fields.MAX_MASK_CHANNELS


@pytest.mark.parametrize(
    "config", [ModelConfig(depth=8), ModelConfig(depth=3, width=0.125), ModelConfig(depth=10)]
)
def test_every_layer_attribute_set_validates(config: ModelConfig) -> None:
    for spec in config.layer_specs():
        values = attributes_for(spec)
        validate(values)
        assert list(values) == [f.name for f in FIELDS]
        assert len(values["mask_channel_weights"]) == len(spec.mask_channel_weights)
        assert sum(values["mask_channel_weights"]) == spec.in_channels


def test_validate_rejects_wrong_attribute_sets() -> None:
    good = attributes_for(ModelConfig(depth=3).layer_specs()[0])
    for broken in (
        {k: v for k, v in good.items() if k != "pads"},
        {**good, "pads": [1, 1]},
        {**good, "activation": [1]},
        {**good, "mask_channel_weights": [1.0] * (plugin_fields.MAX_MASK_CHANNELS + 1)},
        {**good, "extra": 1},
    ):
        with pytest.raises(ValueError):
            validate(broken)


def test_exported_plugin_nodes_carry_exactly_the_fields(tiny_onnx_factory) -> None:  # type: ignore[no-untyped-def]
    """Every PartialConv2d node of an exported plugin-form model: names, ONNX types, lengths, values."""
    import onnx
    from onnx import AttributeProto, helper

    from pconv.training.unet import PConvUNet

    path = tiny_onnx_factory(form="plugin")
    model = onnx.load(str(path))
    nodes = [
        n
        for n in model.graph.node
        if n.op_type == plugin_fields.PLUGIN_NAME and n.domain == plugin_fields.PLUGIN_DOMAIN
    ]
    specs = PConvUNet(depth=3, width=0.125).specs
    assert len(nodes) == len(specs)
    onnx_kind = {
        "int": AttributeProto.INT,
        "ints": AttributeProto.INTS,
        "float": AttributeProto.FLOAT,
        "floats": AttributeProto.FLOATS,
    }
    for node, spec in zip(nodes, specs):
        attrs = {a.name: a for a in node.attribute}
        parser = {
            k: helper.get_attribute_value(attrs.pop(k)).decode() for k in plugin_fields.PARSER_ATTRIBUTES
        }
        assert parser == plugin_fields.PARSER_ATTRIBUTES
        assert sorted(attrs) == sorted(f.name for f in FIELDS)
        values = {}
        for field in FIELDS:
            assert attrs[field.name].type == onnx_kind[field.kind], field.name
            value = helper.get_attribute_value(attrs[field.name])
            values[field.name] = list(value) if field.kind in ("ints", "floats") else value
        validate(values)
        expected = attributes_for(spec)
        assert values["kernel_shape"] == expected["kernel_shape"]
        assert values["pads"] == expected["pads"]
        assert values["activation"] == expected["activation"]
        assert values["activation_alpha"] == pytest.approx(expected["activation_alpha"])
        assert values["mask_channel_weights"] == pytest.approx(expected["mask_channel_weights"])
