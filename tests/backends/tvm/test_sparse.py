"""Block-sparse lowering of pruned Dense weights: the layout, when it is chosen, and agreement with the dense
result."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.tvm import compile as tvm_compile
from accelgen.backends.tvm.lower import to_relax
from accelgen.backends.tvm.sparse import (
    MAX_DENSITY,
    ROW_BLOCK,
    panel_blocks,
    sparse_layout,
)

LANES = 16


def dense_model(k=64, n=64, tokens=8, seed=0):
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [tokens, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [tokens, n])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return accelgen.load(model)


def test_layout_holds_exactly_the_nonzero_blocks():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 48)).astype(np.float32)
    keep = np.zeros((32 // ROW_BLOCK, 48 // LANES), bool)  # 3, 2 and 0 of 8 row blocks kept per panel
    keep[[0, 3, 7], 0] = keep[[2, 5], 1] = True
    w *= np.repeat(np.repeat(keep, ROW_BLOCK, axis=0), LANES, axis=1)
    assert (panel_blocks(w, LANES) == keep.T).all()
    rows, data = sparse_layout(w, LANES)
    rebuilt = np.zeros_like(w)
    for p in range(48 // LANES):
        for t in range(rows.shape[1]):
            r = rows[p, t]
            rebuilt[r * ROW_BLOCK:(r + 1) * ROW_BLOCK, p * LANES:(p + 1) * LANES] += data[p, t]
    np.testing.assert_array_equal(rebuilt, w)  # padding blocks are zeros: they add nothing
    assert sparse_layout(np.ones((32, 48), np.float32), LANES) is None  # dense: not worth it
    assert sparse_layout(w[:, :40], LANES) is None  # width not a multiple of the lanes


@pytest.mark.parametrize("block, sparsity, chosen", [((4, LANES), 0.75, True), ((4, 4), 0.5, False)])
def test_block_pruned_dense_uses_the_sparse_kernel_when_whole_panel_blocks_are_zero(block, sparsity, chosen,
                                                                                     tmp_path):
    graph = accelgen.prune(dense_model(), sparsity=sparsity, method="block", block=block)
    optimized = accelgen.optimize(graph)
    w = next(n for n in optimized.nodes if n.op_type == "Dense").inputs[1].data
    density = panel_blocks(w, LANES).sum(axis=1).max() / (64 // ROW_BLOCK)  # the fullest panel sets the work
    assert (density <= MAX_DENSITY) == chosen
    assert ("dense_bsr" in to_relax(optimized, lanes=LANES).script()) == chosen
    x = np.random.default_rng(2).standard_normal((8, 64)).astype(np.float32)
    got = tvm_compile(graph, out_dir=tmp_path / "lib", threads=1).run({"x": x})["y"]
    np.testing.assert_allclose(got, accelgen.run(graph, {"x": x})["y"], rtol=1e-5, atol=1e-5)
