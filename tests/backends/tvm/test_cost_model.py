"""The cost model's counts: what our schedules do to a kernel, counted from its TIR (no timing here)."""

import numpy as np
import pytest
from tvm import relax

from accelgen.backends.tvm.build import make_target
from accelgen.backends.tvm.cost_model import KernelWork, kernel_seconds
from accelgen.backends.tvm.lower import _const, _packed_conv2d, _packed_matmul
from accelgen.backends.tvm.roofline import _kernel_work, _one_op_module

TARGET = make_target("tvm-cpu", 1)
MACHINE = {"fma_latency_ns": 1.0, "fma_issue_matmul_ns": 0.25, "fma_issue_conv_ns": 0.5, "vector_op_ns": 0.1,
           "vector_div_ns": 2.0, "gather_ns": 0.3, "reduce_vector_step_ns": 0.4, "reduce_scalar_step_ns": 0.2,
           "cache_gbs": 100.0, "dram_gbs": 10.0, "l2_bytes": 1 << 21, "call_overhead_us": 0.01}


def work(make, shapes, lanes):
    return _kernel_work(_one_op_module(make, shapes), TARGET, lanes)


def packed_matmul(m, k, n, lanes):
    w = np.zeros((n // lanes, k, lanes), "float32")
    return work(lambda bb, x: bb.call_te(_packed_matmul, x, _const(w)), [(m, k)], lanes)


@pytest.mark.parametrize("lanes", [8, 16])
def test_matmul_register_blocks(lanes):
    # 8 rows x 2 vectors of columns: 16 accumulators, one step per (tile, k)
    many = packed_matmul(64, 96, 4 * lanes, lanes)
    assert many.fma_steps == {"matmul": [(64 * 96 * 4 * lanes / (16 * lanes), 16)]}
    # one output row: one accumulator per vector, each step waits for the previous one (latency-bound)
    one = packed_matmul(1, 96, 4 * lanes, lanes)
    assert one.fma_steps == {"matmul": [(96 * 4, 1)]}
    assert one.bytes == 4 * (96 + 96 * 4 * lanes + 4 * lanes)
    seconds, bound = kernel_seconds(one, MACHINE)
    assert bound == "compute" and seconds == pytest.approx(96 * 4 * 1e-9 + 0.01e-6)
    seconds, _ = kernel_seconds(many, MACHINE)
    assert seconds == pytest.approx(64 * 96 * 4 / 16 * 16 * 0.25e-9 + 0.01e-6)


def test_convolution_is_its_own_class():
    lanes = 16
    w = np.zeros((2, 4, 3, 3, lanes), "float32")
    conv = work(lambda bb, x: bb.call_te(_packed_conv2d, x, _const(w), (1, 1), (1, 1), (8, 8)), [(1, 4, 10, 10)],
                lanes)
    assert conv.fma_steps == {"conv": [(8 * 8 * 32 * 36 / (16 * 16), 16)]}


def test_elementwise_division_transpose_and_reductions():
    lanes = 16
    div = work(lambda bb, x, y: relax.op.divide(x, y), [(4, 32)] * 2, lanes)
    assert (div.vector_ops, div.div_ops, div.gathers) == (8, 8, 0) and div.bytes == 3 * 4 * 128
    odd = work(lambda bb, x: relax.op.add(x, relax.const(1.0, "float32")), [(4, 5)], lanes)
    assert odd.vector_ops == 20  # 5 does not divide into vectors: one scalar op per element
    transpose = work(lambda bb, x: relax.op.permute_dims(x), [(32, 48)], lanes)
    assert transpose.gathers == 32 * 48
    vector_max = work(lambda bb, x: relax.op.max(x, axis=-1, keepdims=True), [(6, 64)], lanes)
    assert vector_max.reduce_vector_steps == 6 * (64 / lanes + lanes) and vector_max.reduce_scalar_steps == 0
    scalar_max = work(lambda bb, x: relax.op.max(x, axis=-1, keepdims=True), [(6, 12)], lanes)
    assert scalar_max.reduce_scalar_steps == 72 and scalar_max.reduce_vector_steps == 0
    seconds, _ = kernel_seconds(vector_max, MACHINE)
    assert seconds == pytest.approx(6 * 20 * 0.4e-9 + 0.01e-6)


def test_memory_bound_and_views():
    big = KernelWork(vector_ops=1, bytes=1 << 24)
    seconds, bound = kernel_seconds(big, MACHINE)
    assert bound == "memory" and seconds == pytest.approx((1 << 24) / 10e9 + 0.01e-6)
    reshape = work(lambda bb, x: relax.op.reshape(x, (8, 4)), [(4, 8)], 16)
    assert reshape.empty and kernel_seconds(reshape, MACHINE) == (0.0, "view")
