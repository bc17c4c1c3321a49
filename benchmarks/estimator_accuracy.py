"""Error table of the HLS estimator against published Vivado HLS reports (../shared/calibration).

The reference rows are hls4ml's jet-tagging MLP (16-64-32-32-5) with its latency strategy: the top function is
one pipeline, each dense layer pipelined at II = reuse factor with a multiplier limit of ceil(n_in*n_out/RF), zero
weights constant-folded, 16-bit accumulators, and a table softmax without a log2(e) multiply. The script builds
that design's kernels with accelgen's estimator model (accelgen/backends/hls/estimate_model.py: the same
functions `accelgen.estimate` uses, with skip_zeros=True for hls4ml's folding of zero weights) and composes them
as a pipelined top. Nothing here is fitted to the rows. Weights for the constant-multiplier (CSD) count are the
trained weights of examples/jet_mlp, pruned by magnitude to each row's pruned fraction.

    python benchmarks/estimator_accuracy.py [--csv PATH] [--markdown]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "calibration" / "hls_synthesis_reference.csv"
SHAPES = [(16, 64), (64, 32), (32, 32), (32, 5)]
X_W, ACC_W = 16, 16  # hls4ml's ap_fixed<16,6> default for inputs and accumulators
LATENCY_TOL, SMALL_DESIGN, SMALL_TOL, DSP_TOL = 0.15, 15, 2, 0.20


def trained_weights() -> list[np.ndarray]:
    """The Dense weights of examples/jet_mlp (same 16-64-32-32-5 shape), or seeded random ones without it."""
    path = ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"
    if path.is_file():
        import accelgen

        g = accelgen.optimize(accelgen.load(str(path)))
        ws = [np.asarray(n.inputs[1].data, np.float64) for n in g.nodes if n.op_type == "Dense"]
        if [w.shape for w in ws] == SHAPES:
            return ws
    print("note: examples/jet_mlp not usable, using seeded random weights", file=sys.stderr)
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.25, s) for s in SHAPES]


def raw_weights(w: np.ndarray, pruned: float, bits: int) -> np.ndarray:
    """Nonzero weights as raw integers: ap_fixed<16,6> (10 fractional bits), or QKeras quantized_bits(bits, 0)."""
    w = w.copy()
    if pruned > 0:
        w[np.abs(w) < np.quantile(np.abs(w), pruned)] = 0
    frac = 10 if bits >= 16 else bits - 1
    raw = np.clip(np.round(w * 2.0 ** frac), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)
    return raw[raw != 0]


def estimate_row(row: dict, weights: list[np.ndarray]) -> tuple[int, int, int, int, int]:
    from accelgen.backends.hls import estimate_model as m
    from accelgen.backends.hls.parts import find_part

    part = find_part(row["part"])
    timing = m.Timing(float(row["clock_ns"]), part.speed_grade)
    rf, pruned, w_w = int(row["reuse_factor"]), float(row["pruned_fraction"]), int(row["weight_bits"])
    costs = []
    for (n_in, n_out), w in zip(SHAPES, weights):
        raw = raw_weights(w, pruned, w_w)
        if rf == 1:
            costs.append(m.dense_latency(n_in, n_out, 1, raw, X_W, w_w, ACC_W, timing))
        else:
            costs.append(m.dense_reuse(n_in, n_out, 1, len(raw), rf, X_W, w_w, ACC_W, timing, skip_zeros=True))
        if n_out != 5:
            costs.append(m.elementwise(n_out, X_W, "relu"))
    # hls4ml's softmax: exp and 1/sum tables of 1024 ap_fixed<18,8> entries, n products e * (1/sum)
    costs.append(m.softmax(1, 5, X_W, 10, 0, 1024, 18, 18, 18 + 3, 1024, 18, timing))
    latency = m.pipeline_latency(costs, timing)
    ii = max(c.ii for c in costs)
    return latency, ii, sum(c.dsp for c in costs), sum(c.lut for c in costs), sum(c.ff for c in costs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    if not args.csv.is_file():
        print(f"skipped: no calibration data at {args.csv} (the shared folder is absent)")
        return 0
    with args.csv.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    weights = trained_weights()
    header = ["model", "part", "RF", "pruned", "w bits", "latency ref", "est", "err", "II ref", "est",
              "DSP ref", "est", "err", "in target", "LUT ref", "est", "FF ref", "est"]
    table, misses = [], 0
    for row in rows:
        lat, ii, dsp, lut, ff = estimate_row(row, weights)
        lat_ref, dsp_ref = int(row["latency_cycles"]), int(row["dsp"])
        lat_err, dsp_err = (lat - lat_ref) / lat_ref, (dsp - dsp_ref) / dsp_ref
        lat_ok = abs(lat - lat_ref) <= SMALL_TOL if lat_ref < SMALL_DESIGN else abs(lat_err) <= LATENCY_TOL
        judged = int(row["reuse_factor"]) >= 2
        ok = lat_ok and abs(dsp_err) <= DSP_TOL
        misses += judged and not ok
        verdict = ("yes" if ok else "NO") if judged else f"(RF 1: {'ok' if ok else 'miss'})"
        table.append([row["model"], row["part"].split("-")[0], row["reuse_factor"], row["pruned_fraction"],
                      row["weight_bits"], lat_ref, lat, f"{lat_err:+.1%}", row["ii"], ii, dsp_ref, dsp,
                      f"{dsp_err:+.1%}", verdict, row["lut"], lut, row["ff"], ff])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for t in table:
            print("| " + " | ".join(str(v) for v in t) + " |")
    else:
        widths = [max(len(str(v)) for v in col) for col in zip(header, *table)]
        for t in [header, *table]:
            print("  ".join(str(v).rjust(w) for v, w in zip(t, widths)))
    judged_rows = sum(int(r["reuse_factor"]) >= 2 for r in rows)
    print(f"\nrows with RF >= 2 within target (latency 15% or 2 cycles under 15, DSP 20%): "
          f"{judged_rows - misses} of {judged_rows}")
    print("LUT and FF are shown for information only: the model's LUT/FF terms are rough and not validated.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
