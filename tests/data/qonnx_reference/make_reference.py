"""Regenerate the QONNX reference outputs in this folder with QONNX's own executor.

qonnx is not a project dependency; run this in a throwaway venv, from the repository root:

    python3 -m venv /tmp/qvenv && /tmp/qvenv/bin/pip install qonnx==1.0.0
    /tmp/qvenv/bin/python tests/data/qonnx_reference/make_reference.py [SHARED_MODELS_DIR]

For each small hand-built model (Quant / BipolarQuant / Trunc variants) it writes `<case>.onnx`, and for every
case `<case>.npz` with the fixed-seed inputs (`in_<name>`) and qonnx's outputs (`out_<name>`). The shared
Brevitas/FINN models (TFC_1W1A, TFC_1W2A, unsw_nb15-mlp-w2a2) are read from SHARED_MODELS_DIR (default
../shared/models) and only their inputs/outputs are stored here, for SAMPLES inputs stacked on a leading axis.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

HERE = Path(__file__).parent
DOMAIN = "qonnx.custom_op.general"
SAMPLES = 8  # fixed-seed inputs per shared model, stacked on a new leading axis


def one_node(name, op, x, params, attrs=None, version=1, domain=DOMAIN):
    """x is the graph input; params (name -> array) are initializers, in node-input order after x."""
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in params.items()]
    node = helper.make_node(op, ["x", *params], ["y"], domain=domain, **(attrs or {}))
    g = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(domain, version)])
    m.ir_version = 8
    return m


def f32(v):
    return np.asarray(v, dtype=np.float32)


def cases():
    rng = np.random.default_rng(1234)
    x = f32(rng.normal(0, 2, (2, 3, 8)))
    # Exact ties at half an LSB for scale 0.125, so round-half-to-even and the HALF_* modes are all exercised.
    ties = f32(np.arange(-24, 24).reshape(2, 3, 8) * 0.0625)
    per_ch = f32([0.05, 0.2, 0.5]).reshape(1, 3, 1)
    yield "quant_s8_round", one_node("q", "Quant", x, {"scale": f32(0.05), "zeropt": f32(0), "bitwidth": f32(8)},
                                     {"signed": 1, "narrow": 0, "rounding_mode": "ROUND"}), x
    yield "quant_s4_narrow_ties", one_node("q", "Quant", ties, {"scale": f32(0.125), "zeropt": f32(0),
                                                                "bitwidth": f32(4)},
                                           {"signed": 1, "narrow": 1, "rounding_mode": "ROUND"}), ties
    for mode in ["CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]:
        yield f"quant_{mode.lower()}", one_node("q", "Quant", ties, {"scale": f32(0.125), "zeropt": f32(0),
                                                                     "bitwidth": f32(6)},
                                                {"signed": 1, "narrow": 0, "rounding_mode": mode}), ties
    yield "quant_u3_zeropt_perchannel", one_node("q", "Quant", x, {"scale": per_ch, "zeropt": f32(2),
                                                                   "bitwidth": f32(3)},
                                                 {"signed": 0, "narrow": 0, "rounding_mode": "ROUND"}), x
    yield "quant_u5_narrow", one_node("q", "Quant", x, {"scale": f32(0.1), "zeropt": f32(0), "bitwidth": f32(5)},
                                      {"signed": 0, "narrow": 1, "rounding_mode": "round"}), x
    yield "quant_1bit_signed", one_node("q", "Quant", x, {"scale": f32(0.5), "zeropt": f32(0), "bitwidth": f32(1)},
                                        {"signed": 1, "narrow": 0, "rounding_mode": "ROUND"}), x
    yield "intquant_s6", one_node("q", "IntQuant", x, {"scale": f32(0.03), "zeropt": f32(0), "bitwidth": f32(6)},
                                  {"signed": 1, "narrow": 0, "rounding_mode": "ROUND"}), x
    yield "bipolar_perchannel", one_node("b", "BipolarQuant", x, {"scale": per_ch}), x
    yield "bipolar_brevitas_domain", one_node("b", "BipolarQuant", x, {"scale": f32(1.0)},
                                              domain="onnx.brevitas"), x
    acc = f32(np.round(rng.normal(0, 40, (2, 3, 8))) * 0.25)  # a quantized accumulator, scale 0.25
    for mode in ["FLOOR", "ROUND", "CEIL"]:
        yield f"trunc_v1_{mode.lower()}", one_node("t", "Trunc", acc, {"scale": f32(0.25), "zeropt": f32(0),
                                                                        "in_bw": f32(10), "out_bw": f32(6)},
                                                   {"rounding_mode": mode}, version=1), acc
    yield "trunc_v2_signed", one_node("t", "Trunc", acc, {"scale": f32(0.25), "zeropt": f32(0), "in_bw": f32(10),
                                                          "out_scale": f32(2.0), "out_bw": f32(4)},
                                      {"rounding_mode": "FLOOR", "signed": 1, "narrow": 0}, version=2), acc
    yield "trunc_v2_unsigned_narrow_round", one_node("t", "Trunc", np.abs(acc), {
        "scale": f32(0.25), "zeropt": f32(0), "in_bw": f32(10), "out_scale": f32(1.0), "out_bw": f32(3)},
        {"rounding_mode": "ROUND", "signed": 0, "narrow": 1}, version=2), np.abs(acc)


def execute(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    w = ModelWrapper(model).transform(InferShapes())
    out = execute_onnx(w, inputs)
    return {o.name: out[o.name] for o in model.graph.output}


def main():
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2].parent / "shared" / "models"
    for name, model, x in cases():
        onnx.save(model, HERE / f"{name}.onnx")
        outs = execute(model, {"x": x})
        np.savez(HERE / f"{name}.npz", in_x=x, **{f"out_{k}": v for k, v in outs.items()})
        print(name, {k: v.shape for k, v in outs.items()})
    for name in ["TFC_1W1A", "TFC_1W2A", "unsw_nb15-mlp-w2a2"]:
        model = onnx.load(shared / f"{name}.onnx")
        inits = {t.name for t in model.graph.initializer}
        (info,) = [i for i in model.graph.input if i.name not in inits]
        shape = [d.dim_value or 1 for d in info.type.tensor_type.shape.dim]
        xs = np.random.default_rng(7).uniform(0, 1, (SAMPLES, *shape)).astype(np.float32)
        if name == "unsw_nb15-mlp-w2a2":  # its input is annotated BIPOLAR: +-1 features
            xs = np.where(xs >= 0.5, 1, -1).astype(np.float32)
        runs = [execute(model, {info.name: x}) for x in xs]
        np.savez(HERE / f"{name}.npz", **{f"in_{info.name}": xs},
                 **{f"out_{k}": np.stack([r[k] for r in runs]) for k in runs[0]})
        print(name, {k: v.shape for k, v in runs[0].items()})

if __name__ == "__main__":
    main()
