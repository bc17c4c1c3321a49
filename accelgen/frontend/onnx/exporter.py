"""accelgen IR -> ONNX, so a graph changed by accelgen (optimized, pruned) can be used by other tools.

Standard ops are written back as themselves: their attributes as ONNX attributes, the attributes the importer took
from constant inputs (a Reshape's shape, a Slice's starts...) as initializers again. accelgen's fused ops expand
into the standard ops they stand for: Dense -> MatMul, Add, activation; FusedConv -> Conv, activation;
MultiHeadAttention -> the projections, head reshapes, scaled scores, Softmax and output projection. Only float
graphs are exported: fixed-point types have no ONNX form (quantize after exporting).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from accelgen.errors import OptionError
from accelgen.ir.graph import Graph, Value
from accelgen.ir.ops.base import Op
from accelgen.ir.types import FixedType

OPSET = 21  # LayerNormalization (17), Gelu (20), Reduce* axes as inputs (18) all exist here
ATTENTION_OPSET = 23


def _elem(v: Value) -> int:
    return helper.np_dtype_to_tensor_dtype(v.dtype.np_dtype)


class _Writer:
    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.taken = {v.name for v in graph.values()} | {n.name for n in graph.nodes}
        self.domains: set[str] = set()

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name

    def const(self, base: str, array) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def emit(self, op_type: str, inputs, outputs=None, name: str = "", domain: str = "", **attrs) -> list[str]:
        outputs = outputs or [self.fresh(f"{name or op_type}_out")]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=self.fresh(name or op_type),
                                           domain=domain or None, **attrs))
        if domain:
            self.domains.add(domain)
        return list(outputs)

    # -- ops ----------------------------------------------------------------------------------------------------
    def node(self, node) -> None:
        op, name = node.op, node.name
        ins = [v.name if v is not None else "" for v in node.inputs]
        outs = [v.name for v in node.outputs]
        if node.op_type == "Quantized":
            raise OptionError("only float graphs can be exported to ONNX: export before quantizing")
        if node.op_type == "Dense":
            has_bias = len(ins) > 2 and bool(ins[2])
            last = outs if op.activation is None else None
            y = self.emit("MatMul", ins[:2], None if has_bias else last, name)[0]
            if has_bias:
                y = self.emit("Add", [y, ins[2]], last, name + "/bias")[0]
            if op.activation is not None:
                self.standard(op.activation, [y], outs, name + "/activation", node.inputs[0])
        elif node.op_type == "FusedConv":
            if op.activation is None:
                self.standard(op.conv, ins, outs, name, node.inputs[0])
            else:
                y = self.standard(op.conv, ins, None, name, node.inputs[0])
                self.standard(op.activation, y, outs, name + "/activation", node.inputs[0])
        elif node.op_type == "MultiHeadAttention":
            self.attention(node, ins, outs)
        else:
            self.standard(op, ins, outs, name, node.inputs[0] if node.inputs else None)

    def standard(self, op: Op, ins: list[str], outs: list[str] | None, name: str, first: Value | None) -> list[str]:
        if getattr(op, "coerce_2d", False):  # the opset < 13 meaning: rows of the flattened trailing axes
            flat = self.emit("Flatten", ins, None, name + "/flatten", axis=op.axis)[0]
            mid = self.emit(op.op_type, [flat], None, name, axis=1)[0]
            shape = self.emit("Shape", [ins[0]], None, name + "/shape")[0]
            return self.emit("Reshape", [mid, shape], outs, name + "/reshape")
        if op.op_type == "Upsample":
            raise OptionError(f"{name}: Upsample has no form in ONNX opset {self.opset}; it cannot be exported")
        domain = "" if op.domain in ("", "ai.onnx") else op.domain
        values = op.attrs()
        ins = list(ins)
        for slot, attr in sorted(op.attr_inputs.items()):
            value = values.pop(attr, None)
            while len(ins) < slot:
                ins.append("")
            ins.insert(slot, "" if value is None else self.const(f"{name}/{attr}", self._attr_input(op, attr, value, first)))
        while ins and ins[-1] == "":
            ins.pop()
        try:
            schema = onnx.defs.get_schema(op.op_type, self.opset, domain)
            allowed = set(schema.attributes)
        except onnx.defs.SchemaError:
            allowed = set(values)  # custom domains (QONNX): write every attribute
        attrs = {k: self._attr(op, k, v) for k, v in values.items()
                 if k in allowed and v is not None and v != () and not (isinstance(v, str) and v == "" and k != "mode")}
        if op.op_type == "ConstantOfShape":
            attrs["value"] = numpy_helper.from_array(np.array([values["value"]], dtype=np.dtype(values["dtype"])))
        return self.emit(op.op_type, ins, outs, name, domain=domain, **attrs)

    @staticmethod
    def _attr(op: Op, key: str, value):
        if isinstance(value, (bool, np.bool_)):
            return int(value)
        if isinstance(value, np.ndarray):
            return numpy_helper.from_array(value)
        if isinstance(value, np.generic):
            return value.item()
        return value

    @staticmethod
    def _attr_input(op: Op, attr: str, value, first: Value | None) -> np.ndarray:
        """An attribute back as the constant input it was read from, in the dtype that input has in ONNX."""
        if isinstance(value, (np.ndarray, np.generic)):
            return np.asarray(value)
        data_dtype = first.dtype.np_dtype if first is not None else np.float32
        if op.op_type in ("Clip", "Pad") and attr in ("min", "max", "value"):
            return np.asarray(value, data_dtype)
        if op.op_type == "Dropout":
            return np.asarray(value, np.float32 if attr == "ratio" else np.bool_)
        if op.op_type == "TopK":
            return np.asarray([value], np.int64)
        if isinstance(value, tuple) and any(isinstance(x, float) for x in value):
            return np.asarray(value, np.float32)
        return np.asarray(value, np.int64)

    def attention(self, node, ins: list[str], outs: list[str]) -> None:
        """softmax(Q_h K_h^T * scale + mask) V_h per head, then the output projection, in standard ops."""
        op, name = node.op, node.name
        xq, xkv, mask, wq, wk, wv, bq, bk, bv, wo, bo = ins
        if op.zero_masked_rows and (mask or op.causal):
            raise OptionError(f"{name}: attention that zeroes fully masked rows has no plain-ONNX form; it cannot "
                              "be exported")
        dtype = node.inputs[0].dtype.np_dtype
        b, s, _ = node.inputs[0].shape
        skv = node.inputs[1].shape[1]
        heads, d = op.num_heads, op.head_dim

        def split(x, length):  # [B, L, heads * d] -> [B, L, heads, d]
            shape = self.const(f"{name}/heads_shape", np.array([b, length, heads, d], np.int64))
            return self.emit("Reshape", [x, shape], None, name + "/split")[0]

        def project(x, w, bias, tag, length, perm):
            y = self.emit("MatMul", [x, w], None, f"{name}/{tag}")[0]
            y = self.emit("Add", [y, bias], None, f"{name}/{tag}_bias")[0]
            return self.emit("Transpose", [split(y, length)], None, f"{name}/{tag}_heads", perm=perm)[0]

        q = project(xq, wq, bq, "q", s, [0, 2, 1, 3])
        kt = project(xkv, wk, bk, "k", skv, [0, 2, 3, 1])
        v = project(xkv, wv, bv, "v", skv, [0, 2, 1, 3])
        scores = self.emit("MatMul", [q, kt], None, name + "/scores")[0]
        scores = self.emit("Mul", [scores, self.const(f"{name}/scale", np.array(op.scale, dtype))], None,
                           name + "/scaled")[0]
        if mask:
            scores = self.emit("Add", [scores, mask], None, name + "/mask")[0]
        if op.causal:
            allowed = np.arange(skv)[None, :] <= np.arange(s)[:, None]
            bias = np.where(allowed, 0.0, -np.inf).astype(dtype)
            scores = self.emit("Add", [scores, self.const(f"{name}/causal", bias)], None, name + "/causal")[0]
        probs = self.emit("Softmax", [scores], None, name + "/softmax", axis=-1)[0]
        ctx = self.emit("MatMul", [probs, v], None, name + "/context")[0]
        ctx = self.emit("Transpose", [ctx], None, name + "/merge", perm=[0, 2, 1, 3])[0]
        ctx = self.emit("Reshape", [ctx, self.const(f"{name}/merged_shape", np.array([b, s, heads * d], np.int64))],
                        None, name + "/merged")[0]
        y = self.emit("MatMul", [ctx, wo], None, name + "/out")[0]
        self.emit("Add", [y, bo], outs, name + "/out_bias")


def to_onnx(graph: Graph, opset: int | None = None) -> onnx.ModelProto:
    """The graph as a checked ONNX model (float graphs only)."""
    if not isinstance(graph, Graph):
        raise OptionError(f"to_onnx() needs a Graph, got {type(graph).__name__}")
    if any(isinstance(v.dtype, FixedType) for v in graph.values()):
        raise OptionError("only float graphs can be exported to ONNX: export before quantizing")
    if opset is None:
        opset = ATTENTION_OPSET if any(n.op_type == "Attention" for n in graph.nodes) else OPSET
    w = _Writer(graph, opset)
    for node in graph.nodes:
        w.node(node)
    w.initializers = [numpy_helper.from_array(np.asarray(v.data), v.name) for v in graph.constants.values()] \
        + w.initializers

    def info(v: Value) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(v.name, _elem(v), list(v.shape))

    outputs = []
    for v in graph.outputs:
        if v.producer is None:  # an input or constant as an output: ONNX needs a node to produce it
            name = w.fresh(f"{v.name}_output")
            w.emit("Identity", [v.name], [name], name)
            outputs.append(helper.make_tensor_value_info(name, _elem(v), list(v.shape)))
        else:
            outputs.append(info(v))
    g = helper.make_graph(w.nodes, graph.name, [info(v) for v in graph.inputs], outputs, w.initializers)
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in sorted(w.domains)]
    model = helper.make_model(g, opset_imports=imports, producer_name="accelgen")
    model.ir_version = min(model.ir_version, 10)
    if not w.domains:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as e:
            raise AssertionError(f"accelgen wrote an invalid ONNX model: {e}") from e
    return model


def export(graph: Graph, path, force: bool = False, opset: int | None = None) -> Path:
    """Write `graph` as an ONNX file at `path` (an existing file only with force=True)."""
    path = Path(path)
    if path.exists() and not force:
        raise OptionError(f"{str(path)!r} exists; pass force=True (--force) to overwrite it")
    if not path.parent.is_dir():
        raise OptionError(f"{str(path)!r}: the folder {str(path.parent)!r} does not exist")
    model = to_onnx(graph, opset)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(model.SerializeToString())
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OptionError(f"{str(path)!r}: cannot write it: {e.strerror or e}") from None
    return path
