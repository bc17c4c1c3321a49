"""ONNX -> accelgen IR.

Every ONNX node becomes one IR node through its op class's `from_onnx`. While importing, anything computable at
compile time is folded (Shape chains, constant subgraphs), so the shape plumbing PyTorch exports turns into the
constant attributes (Reshape shapes, Slice bounds...) a static-shape compiler needs.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from accelgen.errors import AccelgenError, InputError, InvalidModelError, ShapeError, UnsupportedOpsError
from accelgen.frontend.onnx.reader import check_model, read_model
from accelgen.ir.graph import Graph, Value
from accelgen.ir.ops import lookup
from accelgen.ir.ops.base import Op
from accelgen.ir.types import ElementType, FixedType, TensorType, from_numpy
from accelgen.ir.verify import verify

# The most elements a tensor may have. Far above any real layer, it stops a mistyped shape (or a ConstantOfShape of
# one) from allocating the machine away while folding.
MAX_ELEMENTS = 2**32


def load(model, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import an ONNX model (path, bytes or ModelProto) into a verified, statically shaped IR graph.

    `input_shapes` gives the shape of graph inputs by name; it overrides any fixed or symbolic dimension
    (a leading symbolic batch dimension defaults to 1 without it).
    """
    shapes = given_shapes(input_shapes)
    proto = read_model(model)
    check_supported(proto)
    check_model(proto)
    return _Importer(proto, shapes).run()


def given_shapes(input_shapes) -> dict[str, tuple[int, ...]]:
    """`input_shapes` checked: a mapping of names to sequences of non-negative integers (ONNX allows
    zero-size dimensions)."""
    if input_shapes is None:
        return {}
    if not isinstance(input_shapes, Mapping):
        raise ShapeError(f"input_shapes must be a dict of input name -> shape, got {type(input_shapes).__name__}")
    shapes = {}
    for name, given in input_shapes.items():
        try:
            if isinstance(given, (str, bytes)):
                raise TypeError
            shape = tuple(_integer(d) for d in given)
        except TypeError:
            raise ShapeError(f"the shape given for {name!r} must be a sequence of integers, got {given!r}") from None
        _check_shape(shape, f"the shape given for {name!r}, {shape},")
        shapes[name] = shape
    return shapes


def _integer(d) -> int:
    if isinstance(d, (bool, np.bool_)):
        raise TypeError
    return operator.index(d)


def _check_shape(shape: tuple[int, ...], what: str, hint: str = "") -> None:
    if any(d < 0 for d in shape):
        raise ShapeError(f"{what} has a negative dimension{hint}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ShapeError(f"{what} has {math.prod(shape):,} elements, more than accelgen handles ({MAX_ELEMENTS:,})"
                         f"{hint}")


def check_supported(proto: onnx.ModelProto) -> None:
    """Raise UnsupportedOpsError listing every node whose op accelgen does not implement."""
    missing: dict[str, list[str]] = defaultdict(list)
    for i, n in enumerate(proto.graph.node):
        if not _is_constant(n) and lookup(n.domain, n.op_type) is None:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
            missing[key].append(n.name or f"#{i}")
    if missing:
        raise UnsupportedOpsError(dict(missing))


def _is_constant(node: onnx.NodeProto) -> bool:
    return node.op_type == "Constant" and node.domain in ("", "ai.onnx")


def onnx_opset(proto: onnx.ModelProto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def element_type_name(elem_type: int) -> str:
    known = elem_type in onnx.TensorProto.DataType.values()
    return onnx.TensorProto.DataType.Name(elem_type) if known else str(elem_type)


def element_type(elem_type: int, what: str) -> ElementType:
    try:
        return from_numpy(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise InvalidModelError(f"{what} has element type {element_type_name(elem_type)}, which accelgen does not "
                                "support") from None


def tensor_to_array(t: onnx.TensorProto) -> np.ndarray:
    element_type(t.data_type, f"tensor {t.name!r}")
    try:
        return numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:
        raise InvalidModelError(f"tensor {t.name!r}: its data does not fit its shape {list(t.dims)} ({e})") from None


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
    def __init__(self, proto: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]):
        self.proto = proto
        self.input_shapes = input_shapes
        self.opset = onnx_opset(proto)
        self.graph = Graph(proto.graph.name or "graph")
        self.env: dict[str, Value] = {}
        g = proto.graph
        # Values keep their ONNX names (run() returns outputs by them), so no node may take one first.
        self.value_names = ({i.name for i in g.input} | {t.name for t in g.initializer} | {o.name for o in g.output}
                            | {name for n in g.node for name in n.output})

    def run(self) -> Graph:
        g = self.proto.graph
        used = {name for n in g.node for name in n.input} | {o.name for o in g.output}
        for t in g.initializer:
            if t.name in used:  # an unused initializer of an unsupported type is no reason to refuse the model
                self.env[t.name] = self.graph.add_constant(t.name, tensor_to_array(t))
        self._inputs()
        for index, node in enumerate(g.node):
            self._node(node, index)
        self._outputs()
        self.graph.remove_unused_constants()
        verify(self.graph)
        return self.graph

    def _inputs(self):
        initializers = {t.name for t in self.proto.graph.initializer}
        graph_inputs = [i for i in self.proto.graph.input if i.name not in initializers]
        names = {i.name for i in graph_inputs}
        for name in self.input_shapes:
            if name not in names:
                what = (f"{name!r} is an initializer (a constant), not an input" if name in initializers
                        else "the model has no such input")
                raise ShapeError(f"a shape is given for {name!r}, but {what}; the model's inputs are "
                                 f"{', '.join(map(repr, sorted(names))) or 'none'}")
        for i in graph_inputs:
            if not i.type.HasField("tensor_type"):
                raise InvalidModelError(f"input {i.name!r} is not a tensor; only tensor inputs are supported")
            tt = i.type.tensor_type
            dtype = element_type(tt.elem_type, f"input {i.name!r}")
            declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
            shape = self._input_shape(i.name, declared, tt.HasField("shape"))
            self.env[i.name] = self.graph.add_input(i.name, TensorType(shape, dtype))

    def _input_shape(self, name: str, declared: list, has_shape: bool) -> tuple[int, ...]:
        hint = f"; give its shape with input_shapes={{{name!r}: (...)}} (CLI: --input-shape {name}=1x...)"
        if name in self.input_shapes:
            shape = self.input_shapes[name]
            if has_shape and len(shape) != len(declared):
                raise ShapeError(f"input {name!r} has rank {len(declared)} {_show(declared)}, but the shape given "
                                 f"for it, {shape}, has rank {len(shape)}")
            return shape
        if not has_shape:
            raise ShapeError(f"input {name!r} has no declared shape{hint}")
        if any(isinstance(d, int) and d < 0 for d in declared):
            raise InvalidModelError(f"input {name!r} declares a negative dimension {_show(declared)}")
        dynamic = [i for i, d in enumerate(declared) if not isinstance(d, int)]
        if dynamic and dynamic != [0]:
            raise ShapeError(f"input {name!r} has dynamic dimensions {_show(declared)}{hint}")
        shape = tuple(1 if not isinstance(d, int) else d for d in declared)
        _check_shape(shape, f"input {name!r} {_show(declared)}", hint)
        return shape

    def _outputs(self):
        outputs = self.proto.graph.output
        if not outputs:
            raise InvalidModelError("the model has no outputs")
        seen = set()
        for o in outputs:
            if o.name in seen:
                raise InvalidModelError(f"graph output {o.name!r} is listed more than once")
            seen.add(o.name)
            if o.name not in self.env:
                raise InvalidModelError(f"graph output {o.name!r} is not produced by any node")
            v = self.env[o.name]
            self._check_declared(o, v.type)
            self.graph.outputs.append(v)

    def _check_declared(self, o: onnx.ValueInfoProto, got: TensorType):
        """An output whose declared element type contradicts what accelgen computes means the model or accelgen is
        wrong: refuse (as onnxruntime does) rather than give a silently different answer. Declared shapes are not
        compared: exporters often write placeholders, and given input shapes legitimately change them."""
        tt = o.type.tensor_type
        if not o.type.HasField("tensor_type") or not tt.elem_type or isinstance(got.dtype, FixedType):
            return
        try:
            declared = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except (KeyError, TypeError, ValueError):
            return
        if declared != got.dtype.np_dtype:
            raise InvalidModelError(f"graph output {o.name!r} is declared {element_type_name(tt.elem_type)}, but the "
                                    f"model computes {got}")

    def _fresh(self, base: str) -> str:
        """A name for an unnamed output that no ONNX value of the model has (values keep their ONNX names)."""
        name = base
        while name in self.value_names:
            name += "_node"
        return name

    def _node(self, node: onnx.NodeProto, index: int):
        label = f"node {node.name or '#' + str(index)!r} ({node.op_type})"
        try:
            if _is_constant(node):
                self._constant(node)
                return
            cls = lookup(node.domain, node.op_type)
            attrs = {a.name: attribute_value(a) for a in node.attribute}
            op, inputs = self._convert(cls, node, attrs)
            in_types = [v.type if v is not None else None for v in inputs]
            types = op.infer(in_types)
            for i, t in enumerate(types):
                if math.prod(t.shape) > MAX_ELEMENTS:
                    raise ShapeError(f"output {i} would have shape {t.shape}, more than the {MAX_ELEMENTS:,} "
                                     "elements accelgen handles; check the input shapes")
            folded = op.fold(in_types, [v.data if v is not None else None for v in inputs])
        except MemoryError:
            raise ShapeError(f"{label}: folding it at compile time needs more memory than there is") from None
        except (AccelgenError, ValueError, TypeError, IndexError, ArithmeticError) as e:
            # Errors while folding constant data are the model's, not the caller's inputs'.
            kind = type(e) if isinstance(e, AccelgenError) and not isinstance(e, InputError) else InvalidModelError
            raise kind(f"{label}: {e}") from e
        names = list(node.output)
        if folded is not None:
            for i, (name, t, data) in enumerate(zip(names, types, folded)):
                data = np.asarray(data)
                if data.shape != t.shape:
                    raise AssertionError(f"{label}: folded output {i} has shape {data.shape}, inferred {t.shape}")
                if name:
                    self.env[name] = self.graph.add_constant(name, data.astype(t.dtype.np_dtype, copy=False))
            return
        base = node.name or node.op_type
        out_names = [n or self._fresh(f"{base}_unused{i}") for i, n in enumerate(names)]
        out_names += [self._fresh(f"{base}_out{i}") for i in range(len(names), len(types))]
        ir = self.graph.add_node(op, inputs, out_names[: len(types)], base)
        for name, v in zip(names, ir.outputs):
            if name:
                self.env[name] = v

    def _constant(self, node: onnx.NodeProto):
        if len(node.attribute) != 1:
            raise InvalidModelError("Constant needs exactly one value attribute")
        a = node.attribute[0]
        if a.name == "sparse_value":
            raise InvalidModelError("sparse constants are not supported")
        dtypes = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64}
        if a.name not in ("value", *dtypes):
            raise InvalidModelError(f"Constant attribute {a.name!r} is not supported")
        array = np.asarray(attribute_value(a), dtype=dtypes.get(a.name))
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
