"""accelgen-TVM against onnxruntime on this machine: median latency at batch 1, same thread count, outputs checked.

    python benchmarks/vs_onnxruntime.py [--threads N] [--models mlp,cnn,encoder,bert] [--repeat 50] [--tune-trials N]
    python benchmarks/vs_onnxruntime.py --block-sparse [--threads N]

--tune-trials N adds a column tuned with MetaSchedule (N trials per kernel; each kernel keeps the faster of our
schedule and the tuned one; the database goes to ~/.cache/accelgen/bench-tuning/MODEL and is reused next run).
--block-sparse times a BERT-sized Dense (768 -> 768, 128 tokens) pruned with accelgen.prune(method="block") at
several sparsities, with the block-sparse kernel and with the dense kernel on the same pruned weights.

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
    parser.add_argument("--tune-trials", type=int, default=0)
    parser.add_argument("--block-sparse", action="store_true")
    args = parser.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)  # before tvm loads
    if args.block_sparse:
        return block_sparse(args.threads, args.repeat)

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
            err = float(np.max(np.abs(ours - theirs)))
            tuned_s = tune_s = None
            if args.tune_trials:
                t0 = time.perf_counter()
                out = Path.home() / ".cache" / "accelgen" / "bench-tuning" / key
                tuned = tvm_compile(accelgen.load(model), out_dir=out, threads=args.threads, force=True,
                                    tune_trials=args.tune_trials)
                tune_s = time.perf_counter() - t0
                tuned_out = next(iter(tuned.run({"x": x}).values()))
                agree &= bool(np.allclose(tuned_out, theirs, rtol=1e-4, atol=1e-5))
                err = max(err, float(np.max(np.abs(tuned_out - theirs))))
                tuned_s = tuned.benchmark({"x": x}, repeat=args.repeat, min_repeat_ms=20)["median_s"]
            ok &= agree
            rows.append((title, ort_s, tvm_s, build_s, agree, err, tuned_s, tune_s))
            print(f"  {title}: ort {ort_s * 1e6:.1f} us, tvm {tvm_s * 1e6:.1f} us (build {build_s:.1f} s)"
                  + (f", tuned {tuned_s * 1e6:.1f} us (tuning {tune_s:.0f} s)" if tuned_s else "")
                  + f", max |diff| {err:.2e}", file=sys.stderr, flush=True)

    print(f"\nthreads: {args.threads} (both); medians over {args.repeat} samples\n")
    tuned_head = (f" accelgen-TVM tuned ({args.tune_trials} trials/kernel) | tuned / ORT | tuning |"
                  if args.tune_trials else "")
    print(f"| model | onnxruntime | accelgen-TVM (untuned) | TVM / ORT | build |{tuned_head} agrees (rtol 1e-4, "
          "atol 1e-5) |")
    print("|---|---|---|---|---|" + ("---|---|---|" if args.tune_trials else "") + "---|")
    for title, ort_s, tvm_s, build_s, agree, err, tuned_s, tune_s in rows:
        tuned_cells = (f" {_fmt(tuned_s)} | {tuned_s / ort_s:.2f}x | {tune_s:.0f} s |" if tuned_s else "")
        print(f"| {title} | {_fmt(ort_s)} | {_fmt(tvm_s)} | {tvm_s / ort_s:.2f}x | {build_s:.1f} s |{tuned_cells} "
              f"{'yes' if agree else 'NO'} (max {err:.1e}) |")
    return 0 if ok else 1


def block_sparse(threads: int, repeat: int) -> int:
    """Dense 768 -> 768 on 128 tokens, block-pruned: the block-sparse kernel against the dense kernel."""
    import tvm
    from tvm import relax

    import accelgen
    from accelgen.backends.tvm.build import build, cpu_target
    from accelgen.backends.tvm.lower import to_relax
    from accelgen.backends.tvm.schedules import simd_lanes
    from accelgen.backends.tvm.sparse import panel_blocks

    b = Builder()
    model = b.model([1, 128, 768], b.linear("x", 768, 768))
    graph = accelgen.load(model)
    target = cpu_target(threads)
    lanes = simd_lanes(target)
    x = RNG.standard_normal((1, 128, 768)).astype(np.float32)

    def timed(g, sparse):
        vm = relax.VirtualMachine(build(to_relax(accelgen.optimize(g), lanes=lanes, sparse=sparse), target),
                                  tvm.cpu())
        arg = tvm.runtime.tensor(x)
        out = vm["main"](arg)[0].numpy()
        vm.set_input("main", arg)
        timer = vm.time_evaluator("invoke_stateful", tvm.cpu(), number=5, repeat=repeat, min_repeat_ms=20)
        return float(timer("main").median), out

    dense_s, _ = timed(graph, False)
    print(f"threads: {threads}; SIMD lanes {lanes}; medians over {repeat} samples; unpruned: {_fmt(dense_s)}\n")
    print("| pruning | panel blocks kept | dense kernel | block-sparse kernel | speedup | max diff |")
    print("|---|---|---|---|---|---|")
    for block in ((4, lanes), (4, 4)):
        for sparsity in (0.5, 0.75, 0.9):
            pruned = accelgen.prune(graph, sparsity=sparsity, method="block", block=block)
            w = next(n for n in accelgen.optimize(pruned).nodes if n.op_type == "Dense").inputs[1].data
            kept = panel_blocks(np.asarray(w), lanes).sum(axis=1).max() / (768 // 4)
            d_s, d_out = timed(pruned, False)
            s_s, s_out = timed(pruned, True)
            print(f"| block {block[0]}x{block[1]}, {sparsity:.0%} | {kept:.0%} | {_fmt(d_s)} | {_fmt(s_s)} | "
                  f"{d_s / s_s:.2f}x | {float(np.max(np.abs(d_out - s_out))):.1e} |", flush=True)
    return 0


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    sys.exit(main())
