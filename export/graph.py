"""A small ONNX graph builder and the :class:`pconv.formula.Ops` implementation that emits nodes.

The exporter writes every node itself (no tracing), so the graph holds exactly the ops the
formula asks for: no Identity, no Cast that changes nothing. The same builder writes the main
graph (scalars become deduplicated initializers) and the body of the ``pconv::PartialConv2d``
function (scalars become ``Constant`` nodes, since a function has no initializers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
FLOAT16 = TensorProto.FLOAT16

_NP_DTYPES: dict[int, type[np.generic]] = {FLOAT: np.float32, FLOAT16: np.float16}


class GraphBuilder:
    """Collects nodes and initializers with unique names, tracking each value's element type.

    ``function=True`` builds a function body: constants are emitted as ``Constant`` nodes.
    """

    def __init__(self, *, function: bool = False) -> None:
        self.function = function
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.dtypes: dict[str, int] = {}
        self._used: set[str] = set()
        self._scalars: dict[tuple[float, int], str] = {}
        self._shared: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self.scope = ""
        #: Node names by role (e.g. ``"feature_conv"``): the INT8 export quantizes exactly these.
        self.tagged: dict[str, list[str]] = {}

    # -- names ---------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A value/node name not used yet, prefixed with the current layer scope."""
        base = f"{self.scope}/{hint}" if self.scope else hint
        name, i = base, 1
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def reserve(self, name: str, dtype: int | None = None) -> str:
        """Claim an exact name (graph inputs and outputs)."""
        if name in self._used:
            raise ValueError(f"name {name!r} already used")
        self._used.add(name)
        if dtype is not None:
            self.dtypes[name] = dtype
        return name

    # -- constants -----------------------------------------------------------------------------
    def initializer(self, array: np.ndarray, hint: str) -> str:
        """Add a tensor constant (an initializer in a graph, a ``Constant`` node in a function)."""
        name = self.fresh(hint)
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if self.function:
            self.nodes.append(
                helper.make_node("Constant", [], [name], name=self.fresh(f"{hint}_const"), value=tensor)
            )
        else:
            self.initializers.append(tensor)
        self.dtypes[name] = tensor.data_type
        return name

    def shared_initializer(self, array: np.ndarray, hint: str) -> str:
        """A constant shared by every use of the same value (e.g. the Resize scales)."""
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._shared:
            saved, self.scope = self.scope, ""
            try:
                self._shared[key] = self.initializer(array, hint)
            finally:
                self.scope = saved
        return self._shared[key]

    def scalar(self, value: float, dtype: int = FLOAT) -> str:
        """A 0-d constant, shared by every use of the same (value, dtype) in the graph."""
        key = (float(value), dtype)
        if key not in self._scalars:
            saved, self.scope = self.scope, ""
            try:
                hint = f"c_{value:g}".replace("-", "m").replace(".", "p").replace("+", "")
                self._scalars[key] = self.initializer(np.array(value, dtype=_NP_DTYPES[dtype]), hint)
            finally:
                self.scope = saved
        return self._scalars[key]

    # -- nodes ---------------------------------------------------------------------------------
    def node(
        self,
        op: str,
        inputs: Sequence[str],
        *,
        hint: str | None = None,
        outputs: int | Sequence[str] = 1,
        dtype: int | None = None,
        domain: str = "",
        tag: str | None = None,
        **attrs: Any,
    ) -> list[str]:
        """Append one node; returns its output names. Output dtype: ``dtype`` or the first input's.

        ``tag`` records the node's name under that role in :attr:`tagged`.
        """
        label = hint or op.lower()
        if isinstance(outputs, int):
            names = [self.fresh(label if outputs == 1 else f"{label}_{i}") for i in range(outputs)]
        else:
            names = list(outputs)
        node = helper.make_node(op, list(inputs), names, name=self.fresh(f"{label}_node"), domain=domain)
        for key, value in attrs.items():
            if isinstance(value, onnx.AttributeProto):
                node.attribute.append(value)
            else:
                node.attribute.append(helper.make_attribute(key, value))
        self.nodes.append(node)
        if tag is not None:
            self.tagged.setdefault(tag, []).append(node.name)
        out_type = dtype if dtype is not None else (self.dtypes.get(inputs[0]) if inputs else None)
        if out_type is not None:
            for n in names:
                self.dtypes[n] = out_type
        return names

    def op(
        self,
        op: str,
        *inputs: str,
        hint: str | None = None,
        dtype: int | None = None,
        tag: str | None = None,
        **attrs: Any,
    ) -> str:
        """Append a single-output node and return its output name."""
        return self.node(op, inputs, hint=hint, dtype=dtype, tag=tag, **attrs)[0]

    def cast(self, x: str, to: int) -> str:
        """Cast ``x`` to ``to``; returns ``x`` itself when it already has that type (no clutter)."""
        if self.dtypes.get(x) == to:
            return x
        return self.op(
            "Cast", x, hint=f"{x.rsplit('/', 1)[-1]}_to_{'f16' if to == FLOAT16 else 'f32'}", to=to, dtype=to
        )


class OnnxOps:
    """:class:`pconv.formula.Ops` that appends ONNX nodes to a :class:`GraphBuilder`.

    Python-float scalars become constants of the other operand's element type (FP32 when
    unknown: the mask path, where every scalar of the formula lives, is always FP32).
    """

    def __init__(self, builder: GraphBuilder) -> None:
        self.g = builder

    def _const_like(self, value: float, like: str) -> str:
        return self.g.scalar(value, self.g.dtypes.get(like, FLOAT))

    def clip(self, x: str, lo: float, hi: float) -> str:
        return self.g.op("Clip", x, self._const_like(lo, x), self._const_like(hi, x), hint="new_mask")

    def maximum(self, x: str, lo: float) -> str:
        return self.g.op("Max", x, self._const_like(lo, x), hint="mask_sum_ge1")

    def div(self, a: str | float, b: str) -> str:
        a_name = self._const_like(a, b) if isinstance(a, int | float) else a
        return self.g.op("Div", a_name, b, hint="scale")

    def mul(self, a: str, b: str) -> str:
        return self.g.op("Mul", a, b, hint="mul")

    def add(self, a: str, b: str) -> str:
        return self.g.op("Add", a, b, hint="add")

    def cast_like(self, x: str, like: str) -> str:
        if self.g.function:  # element type unknown until the function is called
            return self.g.op("CastLike", x, like, hint=f"{x.rsplit('/', 1)[-1]}_like")
        target = self.g.dtypes.get(like)
        if target is None:
            raise ValueError(f"unknown element type of {like!r}")
        return self.g.cast(x, target)

    def relu(self, x: str) -> str:
        return self.g.op("Relu", x, hint="relu")

    def leaky_relu(self, x: str, slope: float) -> str:
        return self.g.op("LeakyRelu", x, hint="leaky_relu", alpha=float(slope))


def rename_value(nodes: Sequence[onnx.NodeProto], old: str, new: str) -> None:
    """Rename a value everywhere it is produced or consumed (used to name function outputs)."""
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
