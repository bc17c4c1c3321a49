"""accelgen's HLS backend against hls4ml on the same ONNX models, in one run on this machine.

    python benchmarks/vs_hls4ml.py [--samples 300] [--keep DIR]

For examples/jet_mlp/jet_mlp.onnx each tool generates a Vitis HLS project (io parallel, latency strategy, reuse 1,
part xcvu13p) and builds its C simulation with g++; then both run the same held-out jets (tests/quant/datasets.py)
and are compared with the float model in onnxruntime: argmax agreement and the largest absolute error of the
softmax outputs. Precision: hls4ml one type everywhere, ap_fixed<16,6> and ap_fixed<18,8> (its
config_from_onnx_model, granularity "model"); accelgen "auto" (16-bit types placed by calibration ranges) and uniform
fixed<16,6> (calibrated accumulators and tables). The last layer's logits reach |64| on these jets, so a type with
6 integer bits saturates them in either tool. Then each tries examples/tiny_transformer/tiny_transformer.onnx.

hls4ml's ONNX front end needs the model cleaned by qonnx first (its documented flow: cleanup_model,
ConvertToChannelsLastAndClean, GemmToMatMul, cleanup_model). qonnx is not an accelgen dependency: install it apart,
e.g. `pip install --target /tmp/qonnx_pkgs qonnx attrs clize bitstring sigtools toposort` and run with
PYTHONPATH=/tmp/qonnx_pkgs. Timings are wall-clock seconds of one run each (the machine's other load included);
"generation" is everything before g++ (accelgen: load, optimize, quantize, write; hls4ml: qonnx cleanup,
config, convert, write), "C-sim build" is g++ producing the library the tool's predict() loads, "g++ CPU" the
compiler's user + system time. accelgen's C simulation compiles its types from csim/ag_fast_types.h by default (the
same bits as the Xilinx headers, tests/backends/hls/test_fast_types.py); the last row builds the same project on the
Xilinx ap_types headers, as Vitis does.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JET = ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"
TRANSFORMER = ROOT / "examples" / "tiny_transformer" / "tiny_transformer.onnx"
PART = "xcvu13p-flga2577-2-e"


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: the g++ runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def float_reference(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def compare(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    return float((y.argmax(1) == ref.argmax(1)).mean()), float(np.abs(y - ref).max())


def qonnx_clean(path: Path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    model = model.transform(ConvertToChannelsLastAndClean())
    model = model.transform(GemmToMatMul())
    return cleanup_model(model)


def hls4ml_convert(path: Path, out: Path, precision: str = "fixed<16,6>"):
    import hls4ml

    model = qonnx_clean(path)
    config = hls4ml.utils.config_from_onnx_model(model, granularity="model", backend="Vitis",
                                                 default_precision=precision)
    return hls4ml.converters.convert_from_onnx_model(model, hls_config=config, output_dir=str(out),
                                                     backend="Vitis", io_type="io_parallel", part=PART)


def run_hls4ml(work: Path, precision: str, x: np.ndarray, ref: np.ndarray) -> dict:
    try:
        import hls4ml  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as e:
        return {"error": f"not run: {e} (see the module docstring for qonnx)"}
    t0 = time.perf_counter()
    model = hls4ml_convert(JET, work / f"hls4ml_jet_{precision[6:-1].replace(',', '_')}", precision)
    model.write()
    t1, cpu = time.perf_counter(), children_cpu()
    model._compile()  # compile() = write() + this g++ build and library load
    t2, cpu = time.perf_counter(), children_cpu() - cpu
    y = np.concatenate([model.predict(np.ascontiguousarray(x[i:i + 1])) for i in range(len(x))]).reshape(ref.shape)
    agree, err = compare(y, ref)
    return {"generation": t1 - t0, "build": t2 - t1, "build_cpu": cpu, "agree": agree, "max_err": err}


def run_accelgen(work: Path, precision: str, calib: np.ndarray, x: np.ndarray, ref: np.ndarray,
                 types: str = "fast") -> dict:
    import accelgen

    t0 = time.perf_counter()
    graph = accelgen.load(str(JET))
    project = accelgen.compile(graph, target="hls", out_dir=work / f"accelgen_{precision}_{types}", part=PART,
                               precision=precision, calibration={"input": calib})
    t1, cpu = time.perf_counter(), children_cpu()
    project.build_csim(types)
    t2, cpu = time.perf_counter(), children_cpu() - cpu
    agree, err = compare(project.predict({"input": x}, types)["output"], ref)
    return {"generation": t1 - t0, "build": t2 - t1, "build_cpu": cpu, "agree": agree, "max_err": err}


def transformer_hls4ml(work: Path) -> str:
    try:
        model = hls4ml_convert(TRANSFORMER, work / "hls4ml_transformer")
        model.write()
        return "converted"
    except ImportError as e:
        return f"not run: {e}"
    except Exception as e:  # noqa: BLE001 - whatever hls4ml raises is the answer we report
        return f"fails: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def transformer_accelgen(work: Path) -> str:
    import accelgen

    calib = np.random.default_rng(0).normal(size=(200, 16, 6)).astype(np.float32)
    try:
        project = accelgen.compile(accelgen.load(str(TRANSFORMER)), target="hls", out_dir=work / "accelgen_tt",
                                   part=PART, calibration={"x": calib})
        x = np.random.default_rng(1).normal(size=(20, 16, 6))
        name = project.manifest["outputs"][0]["name"]
        y = project.predict({"x": x})[name]
        q = [accelgen.run(accelgen.load(str(TRANSFORMER)), {"x": x[i:i + 1].astype(np.float32)})[name]
             for i in range(len(x))]
        ref = np.concatenate(q).reshape(y.shape)
        cos = float(y.ravel() @ ref.ravel() / np.linalg.norm(y) / np.linalg.norm(ref))
        return f"converted, C-sim cosine to float {cos:.4f} on {len(x)} inputs"
    except Exception as e:  # noqa: BLE001
        return f"fails: {type(e).__name__}: {str(e).strip().splitlines()[0]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="held-out jets to compare (default 300)")
    parser.add_argument("--keep", metavar="DIR", help="write the projects here (a new folder) instead of a temp dir")
    args = parser.parse_args()
    from tests.quant.datasets import jets

    calib, _ = jets(500, seed=1)
    x, _ = jets(args.samples, seed=2026)
    ref = float_reference(JET, "input", x)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        rows = [("hls4ml 1.3.0, ap_fixed<16,6>", run_hls4ml(work, "fixed<16,6>", x, ref)),
                ("hls4ml 1.3.0, ap_fixed<18,8>", run_hls4ml(work, "fixed<18,8>", x, ref)),
                ("accelgen, auto", run_accelgen(work, "auto", calib, x, ref)),
                ("accelgen, fixed<16,6>", run_accelgen(work, "fixed<16,6>", calib, x, ref)),
                ("accelgen, auto, C-sim on Xilinx ap_types", run_accelgen(work, "auto", calib, x, ref, "ap"))]
        tt = {"hls4ml": transformer_hls4ml(work), "accelgen": transformer_accelgen(work)}
    print(f"jet MLP 16-64-32-32-5, io parallel, latency, {PART}; {args.samples} held-out jets vs float "
          "(onnxruntime)\n")
    print("| tool, precision | generation (s) | C-sim build (s) | g++ CPU (s) | total (s) | argmax = float | "
          "max abs error |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        if "error" in r:
            print(f"| {name} | {r['error']} | | | | | |")
        else:
            print(f"| {name} | {r['generation']:.2f} | {r['build']:.2f} | {r['build_cpu']:.2f} | "
                  f"{r['generation'] + r['build']:.2f} | {100 * r['agree']:.1f}% | {r['max_err']:.4f} |")
    done = [r for _, r in rows if "error" not in r]
    hls4ml_best = min((r["generation"] + r["build"] for _, r in rows[:2] if "error" not in r), default=None)
    if hls4ml_best is not None and len(done) > 2:
        ours = max(r["generation"] + r["build"] for _, r in rows[2:4])
        print(f"\naccelgen (fast C-sim types), slowest of its two rows / hls4ml, fastest of its two: "
              f"{ours / hls4ml_best:.2f}x the time")
    print("\ntiny_transformer.onnx (2 encoder blocks, 16 tokens x 6 features):")
    for tool, result in tt.items():
        print(f"  {tool}: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
