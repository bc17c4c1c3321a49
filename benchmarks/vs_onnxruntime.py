"""accelgen-TVM against onnxruntime on this machine: median latency at batch 1, same thread count, outputs checked.

    python benchmarks/vs_onnxruntime.py [--threads N] [--models mlp,cnn,encoder,bert] [--repeat 50]

The models are built here with onnx.helper from seeded random weights: an MLP 16-64-32-32-5, a CNN (3 conv+pool,
2 dense) on 3x32x32, a post-norm transformer encoder (d=64, 4 heads, seq 64, 2 layers, erf GELU) and a BERT-base
sized layer (d=768, 12 heads, seq 128, FFN 3072). Each goes through accelgen.load -> accelgen.backends.tvm.compile
(accelgen.optimize inside) and through onnxruntime with all graph optimizations.

Timing: TVM with the VM's time_evaluator (no Python in the loop); onnxruntime with session.run in a Python loop
(its per-call Python overhead, a few microseconds, is included: it matters only for the MLP). Agreement: every output
within rtol 1e-4, atol 1e-5 of onnxruntime's, on random inputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


class Builder:
    """A tiny onnx.helper wrapper: nodes and initializers with unique names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, array, base="c"):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def weight(self, *shape):
        fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
        return self.const((RNG.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), "w")

    def bias(self, n):
        return self.const((0.1 * RNG.standard_normal(n)).astype(np.float32), "b")

    def linear(self, x, k, n):
        return self.op("Add", [self.op("MatMul", [x, self.weight(k, n)]), self.bias(n)])

    def model(self, x_shape, out, opset=17):
        graph = helper.make_graph(self.nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                  [helper.make_empty_tensor_value_info(out)], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return onnx.shape_inference.infer_shapes(m, strict_mode=True)


def mlp():
    b, x = Builder(), "x"
    for k, n in [(16, 64), (64, 32), (32, 32)]:
        x = b.op("Relu", [b.linear(x, k, n)])
    return b.model([1, 16], b.linear(x, 32, 5)), (1, 16)


def cnn():
    b, x = Builder(), "x"
    for c_in, c_out in [(3, 16), (16, 32), (32, 64)]:
        conv = b.op("Conv", [x, b.weight(c_out, c_in, 3, 3), b.bias(c_out)], pads=[1, 1, 1, 1])
        x = b.op("MaxPool", [b.op("Relu", [conv])], kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Flatten", [x])
    x = b.op("Relu", [b.linear(x, 64 * 4 * 4, 128)])
    return b.model([1, 3, 32, 32], b.linear(x, 128, 10)), (1, 3, 32, 32)


def encoder_layer(b, x, seq, d, heads, ffn):
    hd = d // heads
    split = b.const(np.array([1, seq, heads, hd], np.int64), "shape")
    q, k, v = (b.op("Reshape", [b.linear(x, d, d), split]) for _ in range(3))
    q = b.op("Transpose", [q], perm=[0, 2, 1, 3])
    k = b.op("Transpose", [k], perm=[0, 2, 3, 1])
    v = b.op("Transpose", [v], perm=[0, 2, 1, 3])
    scores = b.op("Div", [b.op("MatMul", [q, k]), b.const(np.array(np.sqrt(hd), np.float32))])
    ctx = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
    ctx = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]), b.const(np.array([1, seq, d], np.int64))])
    x = b.op("Add", [x, b.linear(ctx, d, d)])
    x = b.op("LayerNormalization", [x, b.const(np.ones(d, np.float32)), b.bias(d)], axis=-1, epsilon=1e-5)
    h = b.linear(x, d, ffn)
    erf = b.op("Erf", [b.op("Div", [h, b.const(np.array(np.sqrt(2.0), np.float32))])])
    h = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, b.const(np.array(1.0, np.float32))])]),
                     b.const(np.array(0.5, np.float32))])
    x = b.op("Add", [x, b.linear(h, ffn, d)])
    return b.op("LayerNormalization", [x, b.const(np.ones(d, np.float32)), b.bias(d)], axis=-1, epsilon=1e-5)


def encoder():
    b, x = Builder(), "x"
    for _ in range(2):
        x = encoder_layer(b, x, seq=64, d=64, heads=4, ffn=256)
    return b.model([1, 64, 64], x), (1, 64, 64)


def bert():
    b = Builder()
    return b.model([1, 128, 768], encoder_layer(b, "x", seq=128, d=768, heads=12, ffn=3072)), (1, 128, 768)


MODELS = {"mlp": ("MLP 16-64-32-32-5", mlp), "cnn": ("CNN 3 conv + 2 dense, 3x32x32", cnn),
          "encoder": ("encoder d=64, 4 heads, seq 64, 2 layers", encoder),
          "bert": ("BERT-base layer d=768, seq 128", bert)}


def ort_median(model, x, threads, repeat):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"x": x}
    out = sess.run(None, feeds)[0]
    for _ in range(5):
        sess.run(None, feeds)
    # batch calls so each sample lasts >= ~20 ms, like time_evaluator's min_repeat_ms
    t0 = time.perf_counter()
    sess.run(None, feeds)
    number = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-7)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            sess.run(None, feeds)
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples)), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)  # before tvm loads

    import accelgen
    from accelgen.backends.tvm import compile as tvm_compile

    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            title, make = MODELS[key]
            model, shape = make()
            x = RNG.standard_normal(shape).astype(np.float32)
            t0 = time.perf_counter()
            module = tvm_compile(accelgen.load(model), out_dir=Path(tmp) / key, threads=args.threads)
            build_s = time.perf_counter() - t0
            ours = next(iter(module.run({"x": x}).values()))
            tvm_s = module.benchmark({"x": x}, repeat=args.repeat, min_repeat_ms=20)["median_s"]
            ort_s, theirs = ort_median(model, x, args.threads, args.repeat)
            agree = bool(np.allclose(ours, theirs, rtol=1e-4, atol=1e-5))
            ok &= agree
            err = float(np.max(np.abs(ours - theirs)))
            rows.append((title, ort_s, tvm_s, build_s, agree, err))
            print(f"  {title}: ort {ort_s * 1e6:.1f} us, tvm {tvm_s * 1e6:.1f} us (build {build_s:.1f} s), "
                  f"max |diff| {err:.2e}", file=sys.stderr, flush=True)

    print(f"\nthreads: {args.threads} (both); medians over {args.repeat} samples\n")
    print("| model | onnxruntime | accelgen-TVM (untuned) | TVM / ORT | build | agrees (rtol 1e-4, atol 1e-5) |")
    print("|---|---|---|---|---|---|")
    for title, ort_s, tvm_s, build_s, agree, err in rows:
        print(f"| {title} | {_fmt(ort_s)} | {_fmt(tvm_s)} | {tvm_s / ort_s:.2f}x | {build_s:.1f} s | "
              f"{'yes' if agree else 'NO'} (max {err:.1e}) |")
    return 0 if ok else 1


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    sys.exit(main())
