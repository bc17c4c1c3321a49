"""Small ONNX models for the tests, built one way everywhere: one-node models from example arrays (`build`, with
`check` and `load` on top, and `typed_model` under every such builder), models written in ONNX text (`const`,
`text_model`), and a model whose weight lives in an external data file."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, parser, shape_inference

import accelgen
from tests.ortcheck import check_against_ort

# y = Relu(x) with a symbolic batch N, in ONNX text.
RELU = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,4] y) { y = Relu(x) }"""


# -- from arrays ----------------------------------------------------------------------------------------------------
def typed_model(nodes, graph_inputs, outputs, inits, opset: int, out_dtypes, domain: str = "") -> onnx.ModelProto:
    """A model of `nodes` with outputs named `outputs` and typed by ONNX shape inference. The checker needs typed
    outputs; where inference rejects a node (the error tests), a placeholder of `out_dtypes` lets accelgen's own
    checks speak (accelgen ignores the declared output types)."""
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    graph = helper.make_graph(list(nodes), "g", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs], inits)
    m = helper.make_model(graph, opset_imports=opsets)
    m.ir_version = 8
    try:
        m = shape_inference.infer_shapes(m, strict_mode=True)
    except Exception:
        pass
    for o, d in zip(m.graph.output, out_dtypes):
        if not o.type.tensor_type.HasField("shape"):
            o.CopyFrom(helper.make_tensor_value_info(o.name, helper.np_dtype_to_tensor_dtype(np.dtype(d)), []))
    return m


def value_info(name: str, a: np.ndarray) -> onnx.ValueInfoProto:
    """A graph input shaped and typed like the example array `a`."""
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)


def build(op: str, inputs, opset: int, attrs=None, consts=(), n_out: int = 1) -> onnx.ModelProto:
    """A one-node model. `inputs` are (name, array) pairs in the node's input order (name '' = absent input);
    names in `consts` become initializers, the rest graph inputs; outputs are y0, y1, ..."""
    graph_inputs, inits, names = [], [], []
    for name, a in inputs:
        names.append(name)
        if not name:
            continue
        a = np.asarray(a)
        if name in consts:
            inits.append(numpy_helper.from_array(a, name))
        else:
            graph_inputs.append(value_info(name, a))
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    return typed_model([node], graph_inputs, outs, inits, opset, [np.float32] * n_out)


def check(op: str, inputs, opset: int = 17, attrs=None, consts=(), n_out: int = 1, **tol) -> accelgen.Graph:
    """`build` the model and assert accelgen agrees with onnxruntime on it; return the imported graph."""
    m = build(op, inputs, opset, attrs, consts, n_out)
    feeds = {n: np.asarray(a) for n, a in inputs if n and n not in consts}
    return check_against_ort(m, feeds, **tol)


def load(op: str, inputs, opset: int = 17, attrs=None, consts=(), n_out: int = 1) -> accelgen.Graph:
    """`build` the model and import it."""
    return accelgen.load(build(op, inputs, opset, attrs, consts, n_out))


# -- from ONNX text -------------------------------------------------------------------------------------------------
def const(name, a, dtype="float"):
    """An initializer in ONNX text: `float[2,3] w = {...}` (a 0-d array gives a scalar)."""
    a = np.asarray(a)
    dims = f"[{','.join(map(str, a.shape))}]" if a.ndim else ""
    if dtype == "float16":  # the text format spells float16 data as its bit patterns
        values = [str(int(v)) for v in a.astype(np.float16).view(np.uint16).flat]
    elif dtype.startswith(("int", "uint")):
        values = [str(int(v)) for v in a.flat]
    else:
        values = [repr(float(v)) for v in a.flat]
    return f"{dtype}{dims} {name} = {{{', '.join(values)}}}"


def text_model(signature, inits, body, opset=17) -> accelgen.Graph:
    """The imported graph `g signature <inits> { body }` (inits as `const` gives them)."""
    init_text = f"<{', '.join(inits)}>" if inits else ""
    text = f'<ir_version: 8, opset_import: ["" : {opset}]>\ng {signature} {init_text} {{\n{body}\n}}'
    return accelgen.load(parser.parse_model(text))


# -- files --------------------------------------------------------------------------------------------------------
def external_data_model(tmp_path, location):
    """tmp_path/model/m.onnx: y = x + w, with w's data declared to be in the external file `location`."""
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.external_data.add(key="location", value=location)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path
