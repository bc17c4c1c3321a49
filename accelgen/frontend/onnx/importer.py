"""ONNX -> accelgen IR.

Every ONNX node becomes one IR node through its op class's `from_onnx`. While importing, anything computable at
compile time is folded (Shape chains, constant subgraphs), so the shape plumbing PyTorch exports turns into the
constant attributes (Reshape shapes, Slice bounds...) a static-shape compiler needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from accelgen.errors import AccelgenError, InvalidModelError, ShapeError, UnsupportedOpsError
from accelgen.frontend.onnx.reader import read_model
from accelgen.ir.graph import Graph, Value
from accelgen.ir.ops import lookup
from accelgen.ir.ops.base import Op
from accelgen.ir.types import ElementType, TensorType, from_numpy
from accelgen.ir.verify import verify



def load(model, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) into a verified, statically shaped IR graph.

    `input_shapes` gives the shape of graph inputs by name; it overrides any fixed or symbolic dimension
    (a leading symbolic batch dimension defaults to 1 without it).
    """
    proto = read_model(model)
    return _Importer(proto, dict(input_shapes or {})).run()


def onnx_opset(proto: onnx.ModelProto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def element_type(elem_type: int, what: str) -> ElementType:
    try:
        return from_numpy(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise InvalidModelError(f"{what} has element type {name}, which accelgen does not support") from None


def tensor_to_array(t: onnx.TensorProto) -> np.ndarray:
    element_type(t.data_type, f"tensor {t.name!r}")
    return numpy_helper.to_array(t)


def attribute_value(a: onnx.AttributeProto):
    if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        raise InvalidModelError(f"attribute {a.name!r} holds a subgraph; control flow is not supported")
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return tensor_to_array(v)
    if isinstance(v, list):
        return tuple(x.decode() if isinstance(x, bytes) else x for x in v)
    return v


def attr_from_array(a: np.ndarray):
    """A constant input turned into an attribute: scalars as numpy scalars (they keep their dtype, which Range's
    output type depends on), 1-D arrays as tuples of Python numbers."""
    a = np.asarray(a)
    return a[()] if a.ndim == 0 else tuple(a.reshape(-1).tolist()) if a.ndim == 1 else a


class _Importer:
    def __init__(self, proto: onnx.ModelProto, input_shapes: dict[str, Sequence[int]]):
        self.proto = proto
        self.input_shapes = input_shapes
        self.opset = onnx_opset(proto)
        self.graph = Graph(proto.graph.name or "graph")
        self.env: dict[str, Value] = {}

    def run(self) -> Graph:
        g = self.proto.graph
        self._check_ops()
        for t in g.initializer:
            self.env[t.name] = self.graph.add_constant(t.name, tensor_to_array(t))
        self._inputs()
        for index, node in enumerate(g.node):
            self._node(node, index)
        for o in g.output:
            if o.name not in self.env:
                raise InvalidModelError(f"graph output {o.name!r} is not produced by any node")
            self.graph.outputs.append(self.env[o.name])
        self.graph.remove_unused_constants()
        verify(self.graph)
        return self.graph

    def _check_ops(self):
        missing: dict[str, list[str]] = defaultdict(list)
        for i, n in enumerate(self.proto.graph.node):
            if n.op_type != "Constant" and lookup(n.domain, n.op_type) is None:
                key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                missing[key].append(n.name or f"#{i}")
        if missing:
            raise UnsupportedOpsError(dict(missing))

    def _inputs(self):
        graph_inputs = [i for i in self.proto.graph.input if i.name not in self.env]
        names = {i.name for i in graph_inputs}
        unknown = sorted(set(self.input_shapes) - names)
        if unknown:
            raise ShapeError(f"input_shapes names {', '.join(map(repr, unknown))}, but the model's inputs are "
                             f"{', '.join(map(repr, sorted(names))) or 'none'}")
        for i in graph_inputs:
            tt = i.type.tensor_type
            if not i.type.HasField("tensor_type"):
                raise InvalidModelError(f"input {i.name!r} is not a tensor; only tensor inputs are supported")
            dtype = element_type(tt.elem_type, f"input {i.name!r}")
            declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
            shape = self._input_shape(i.name, declared, tt.HasField("shape"))
            self.env[i.name] = self.graph.add_input(i.name, TensorType(shape, dtype))

    def _input_shape(self, name: str, declared: list, has_shape: bool) -> tuple[int, ...]:
        if name in self.input_shapes:
            given = self.input_shapes[name]
            try:
                shape = tuple(int(d) for d in given)
            except (TypeError, ValueError):
                raise ShapeError(f"input_shapes[{name!r}] must be a sequence of integers, got {given!r}") from None
            if any(d < 0 for d in shape):
                raise ShapeError(f"input_shapes[{name!r}] = {shape} has a negative dimension")
            if has_shape and len(shape) != len(declared):
                raise ShapeError(f"input {name!r} has rank {len(declared)} {_show(declared)}, but input_shapes "
                                 f"gives rank {len(shape)} {shape}")
            return shape
        if not has_shape:
            raise ShapeError(f"input {name!r} has no declared shape; give it with input_shapes={{{name!r}: (...)}}")
        dynamic = [i for i, d in enumerate(declared) if not isinstance(d, int)]
        if dynamic and dynamic != [0]:
            raise ShapeError(f"input {name!r} has dynamic dimensions {_show(declared)}; give its shape with "
                             f"input_shapes={{{name!r}: (...)}} (CLI: --input-shape {name}=1x...)")
        return tuple(1 if not isinstance(d, int) else d for d in declared)

    def _node(self, node: onnx.NodeProto, index: int):
        label = f"node {node.name or '#' + str(index)!r} ({node.op_type})"
        try:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self._constant(node)
                return
            cls = lookup(node.domain, node.op_type)
            attrs = {a.name: attribute_value(a) for a in node.attribute}
            op, inputs = self._convert(cls, node, attrs)
            in_types = [v.type if v is not None else None for v in inputs]
            types = op.infer(in_types)
            folded = op.fold(in_types, [v.data if v is not None else None for v in inputs])
        except (AccelgenError, ValueError, TypeError) as e:
            kind = type(e) if isinstance(e, AccelgenError) else InvalidModelError
            raise kind(f"{label}: {e}") from None
        names = list(node.output)
        if folded is not None:
            for i, (name, t, data) in enumerate(zip(names, types, folded)):
                data = np.asarray(data)
                if data.shape != t.shape:
                    raise AssertionError(f"{label}: folded output {i} has shape {data.shape}, inferred {t.shape}")
                if name:
                    self.env[name] = self.graph.add_constant(name, data.astype(t.dtype.np_dtype, copy=False))
            return
        out_names = [n or f"{node.name or node.op_type}_unused{i}" for i, n in enumerate(names)]
        out_names += [f"{node.name or node.op_type}_out{i}" for i in range(len(names), len(types))]
        ir = self.graph.add_node(op, inputs, out_names[: len(types)], node.name or node.op_type)
        for name, v in zip(names, ir.outputs):
            if name:
                self.env[name] = v

    def _constant(self, node: onnx.NodeProto):
        if len(node.attribute) != 1:
            raise InvalidModelError("Constant needs exactly one value attribute")
        a = node.attribute[0]
        value = attribute_value(a)
        if a.name == "sparse_value":
            raise InvalidModelError("sparse constants are not supported")
        dtypes = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64}
        if a.name not in ("value", *dtypes):
            raise InvalidModelError(f"Constant attribute {a.name!r} is not supported")
        array = np.asarray(value, dtype=dtypes.get(a.name))
        self.env[node.output[0]] = self.graph.add_constant(node.output[0], array)

    def _value(self, name: str) -> Value | None:
        if not name:
            return None
        if name not in self.env:
            raise InvalidModelError(f"input {name!r} is not defined before it is used")
        return self.env[name]

    def _convert(self, cls: type[Op], node: onnx.NodeProto, attrs: dict) -> tuple[Op, list[Value | None]]:
        inputs: list[Value | None] = []
        for slot, name in enumerate(node.input):
            v = self._value(name)
            attr = cls.attr_inputs.get(slot)
            if attr is None:
                inputs.append(v)
            elif v is not None:
                if v.data is None:
                    raise ShapeError(f"input {slot} ({attr!r}, value {name!r}) must be known at compile time, but "
                                     "it depends on runtime data; accelgen compiles static graphs")
                attrs[attr] = attr_from_array(v.data)
        while inputs and inputs[-1] is None:
            inputs.pop()
        return cls.from_onnx(attrs, self.opset, len(node.output)), inputs


def _show(dims: list) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
