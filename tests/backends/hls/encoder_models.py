"""Transformer encoders of any size built with onnx.helper and seeded random weights (no torch): a Dense input
embedding, post-norm blocks of MatMul+Add projections around ONNX Attention (opset 23), residual Adds,
LayerNormalization and a feed-forward pair of MatMul+Add with Relu or Gelu between them. `optimize` fuses each
block's attention into one MultiHeadAttention and each MatMul+Add into a Dense."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import accelgen


def encoder_onnx(seq: int, features: int, d_model: int, heads: int, ffn: int, blocks: int,
                 activation: str = "Relu", seed: int = 0):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def weight(name, *shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        inits.append(numpy_helper.from_array(rng.uniform(-s, s, shape).astype(np.float32), name))
        return name

    def dense(x, name, n_in, n_out):
        nodes.extend([helper.make_node("MatMul", [x, weight(f"{name}_w", n_in, n_out)], [f"{name}_mm"]),
                      helper.make_node("Add", [f"{name}_mm", weight(f"{name}_b", n_out, scale=0.1)], [name])])
        return name

    def layernorm(x, name):
        inits.append(numpy_helper.from_array(rng.normal(1, 0.1, d_model).astype(np.float32), f"{name}_g"))
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, d_model).astype(np.float32), f"{name}_b"))
        nodes.append(helper.make_node("LayerNormalization", [x, f"{name}_g", f"{name}_b"], [name], axis=-1,
                                      epsilon=1e-5))
        return name

    h = dense("x", "embed", features, d_model) if features != d_model else "x"
    for b in range(blocks):
        p = f"b{b}"
        q, k, v = (dense(h, f"{p}_{c}", d_model, d_model) for c in "qkv")
        nodes.append(helper.make_node("Attention", [q, k, v], [f"{p}_att"], q_num_heads=heads, kv_num_heads=heads))
        o = dense(f"{p}_att", f"{p}_o", d_model, d_model)
        nodes.append(helper.make_node("Add", [h, o], [f"{p}_res1"]))
        n1 = layernorm(f"{p}_res1", f"{p}_ln1")
        f1 = dense(n1, f"{p}_ff1", d_model, ffn)
        nodes.append(helper.make_node(activation, [f1], [f"{p}_act"]))
        f2 = dense(f"{p}_act", f"{p}_ff2", ffn, d_model)
        nodes.append(helper.make_node("Add", [n1, f2], [f"{p}_res2"]))
        h = layernorm(f"{p}_res2", f"{p}_ln2")
    nodes.append(helper.make_node("Identity", [h], ["y"]))
    graph = helper.make_graph(nodes, f"encoder_{d_model}x{blocks}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, d_model])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return model


def encoder_graph(*args, **kwargs) -> accelgen.Graph:
    return accelgen.optimize(accelgen.load(encoder_onnx(*args, **kwargs)))
