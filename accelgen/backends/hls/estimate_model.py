"""The analytical model of the HLS kernels accelgen generates (see docs/estimator.md for the equations).

Pure functions of what the generator decided (shapes, nonzero weights, reuse factor, operand widths, table sizes)
and of the part's speed grade and the clock; no graph here. Each kernel is described by a `Cost`: the combinational
delay of its longest path in ns (chained into neighbours when the top level is one pipeline), the cycles it needs
regardless of chaining (loop trip counts, registered memory reads), and its resources.

Delays are Vivado/Vitis HLS-style operator delays for a -2 UltraScale+ part, scaled by speed grade; HLS schedules
against the clock minus its default 12.5% uncertainty. Multiplications go to DSPs when both operands are at least
DSP_MIN_WIDTH bits, to LUTs otherwise; constant multiplications by weights with at most two signed digits (CSD)
(powers of two) are shifts and cost no multiplier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

UNCERTAINTY = 0.125  # HLS default clock uncertainty
SPEED = {1: 1.3, 2: 1.0, 3: 0.87}  # delay scale per speed grade
T_DSP_MUL = 2.4  # ns, a DSP48 multiply with its routing
T_IO = 0.5  # ns, interface register to logic
DSP_MIN_WIDTH = 10  # narrower products are cheaper in LUTs; HLS maps them there
DSP_A, DSP_B = 27, 18  # DSP48E2 multiplier port widths
LUTRAM_MAX_BITS = 1024 * 18  # HLS puts smaller ROMs in LUTs (distributed ROM), larger ones in block RAM
BRAM18_BITS = 18432


def t_add(width: int) -> float:
    """A carry-chain adder/comparator of `width` bits: a fixed LUT stage plus the carry ripple."""
    return 0.35 + 0.015 * width


def t_mux(inputs: int) -> float:
    """An n:1 multiplexer built from LUT6 (4:1 per level)."""
    return 0.3 * math.ceil(math.log(max(inputs, 1), 4)) if inputs > 1 else 0.0


def t_lut_mul(a: int, b: int) -> float:
    """A LUT multiplier: one LUT level of partial products, then their adder tree."""
    return 0.5 + tree_depth(min(a, b)) * t_add(a + b)


def tree_depth(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def dsp_per_product(a: int, b: int) -> int:
    """DSP48E2 slices for one a x b product (0 when it goes to LUTs)."""
    lo, hi = sorted((a, b))
    if lo < DSP_MIN_WIDTH:
        return 0
    return math.ceil(hi / DSP_A) * math.ceil(lo / DSP_B)


def csd_digits(raw: np.ndarray) -> np.ndarray:
    """Nonzero digits of each integer in canonical signed-digit form (the adders a constant multiply needs + 1)."""
    x = np.abs(np.asarray(raw, dtype=np.int64))
    y = ((3 * x) ^ x) >> 1  # the nonzero digits of the non-adjacent form of x are the set bits of this
    count = np.zeros_like(x)
    while np.any(y):
        count += y & 1
        y >>= 1
    return count


@dataclass
class Cost:
    delay_ns: float = 0.0  # longest combinational path (chainable)
    cycles: int = 0  # cycles that do not chain: loop iterations, registered reads
    ii: int = 1
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram18: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Timing:
    clock_ns: float
    speed_grade: int

    @property
    def budget(self) -> float:
        """ns of logic HLS puts in one cycle, in -2 delay units."""
        return self.clock_ns * (1 - UNCERTAINTY) / SPEED.get(self.speed_grade, 1.0)

    def stages(self, delay_ns: float) -> int:
        return math.ceil(delay_ns / self.budget - 1e-9) if delay_ns > 0 else 0


def rom(entries: int, width: int, readers: int, timing: Timing) -> tuple[int, int, int, float]:
    """A constant table read by `readers` ports in the same cycle: (bram18, lut, register cycles, delay).
    Small tables are LUT ROMs, one copy per reader (combinational); large ones block RAMs with two ports each,
    ceil(readers / 2) copies, and a registered read (one cycle)."""
    bits = entries * width
    if bits <= LUTRAM_MAX_BITS:
        luts = readers * width * max(1, math.ceil(entries / 64))
        return 0, luts, 0, t_mux(max(entries // 64, 1)) + 0.6
    copies = math.ceil(readers / 2)
    per_copy = math.ceil(width / 18) * math.ceil(entries / 1024) if width <= 18 else math.ceil(bits / BRAM18_BITS)
    return copies * max(per_copy, 1), 0, 1, 0.0


def products(weights_raw: np.ndarray | None, n_products: int, x_w: int, w_w: int, constant: bool) -> tuple[int, int, float]:
    """(DSPs, LUTs, delay) of n parallel x*w products; a constant weight with one signed digit (+-2**k) is a
    shift: wires and, when negative, a negation."""
    per_dsp = dsp_per_product(x_w, w_w)
    shift_add = 0
    if constant and weights_raw is not None and len(weights_raw):
        shift_add = int(np.count_nonzero(csd_digits(weights_raw) <= 1))
    general = n_products - shift_add
    lut = shift_add * (x_w + w_w)
    if per_dsp:
        dsp, delay = general * per_dsp, T_DSP_MUL
    else:
        dsp, delay = 0, t_lut_mul(x_w, w_w)
        lut += general * int(0.6 * x_w * w_w)
    return dsp, lut, delay if general else t_add(x_w + w_w)


def dense_latency(n_in: int, n_out: int, tokens: int, weights_raw: np.ndarray, x_w: int, w_w: int, acc_w: int,
                  timing: Timing) -> Cost:
    """Fully unrolled over the nonzero weights: one multiplier each, an adder tree per output of depth
    ceil(log2(nonzeros into it + bias))."""
    nz = len(weights_raw)
    dsp, lut, t_mul = products(weights_raw, nz, x_w, w_w, constant=True)
    fan_in = max(nz // max(n_out, 1), 1)
    delay = t_mul + tree_depth(fan_in + 1) * t_add(acc_w)
    lut += nz * acc_w  # one adder per product into the trees
    # per token; the token loop is a loop (tokens - 1 more cycles) unless a pipelined top unrolls it
    return Cost(delay_ns=delay, cycles=tokens - 1, dsp=dsp, lut=lut, ff=n_out * acc_w,
                notes=[f"{nz} multipliers, adder tree depth {tree_depth(fan_in + 1)}"])


def dense_reuse(n_in: int, n_out: int, tokens: int, nonzero: int, reuse: int, x_w: int, w_w: int, acc_w: int,
                timing: Timing, skip_zeros: bool = False) -> Cost:
    """RF-way time multiplexing: a multiplier limit of ceil(n_in*n_out / RF) products per cycle, over
    ceil(n_in*n_out / limit) cycles (about RF; fewer when RF exceeds what the layer can use).

    accelgen's resource kernel reads every weight, zeros included, from a ROM in a loop pipelined at II=1, so
    it instantiates the full limit, as tiles of tile_in inputs x tile_out = gcd(limit, n_out) outputs
    (layers.resource_tiles): tile_in x multiplexers over ceil(n_in / tile_in) inputs, each shared by tile_out
    multipliers; tile_out accumulator columns, each a chain of tile_in adders reading (and writing back) one of
    n_out / tile_out accumulators. With skip_zeros (hls4ml's latency strategy with a reuse factor: the layer is
    pipelined at II=RF and zero weights are constant-folded away) only min(nonzero, limit) multipliers exist, and
    the schedule still spans the same cycles (the II constraint)."""
    total = n_in * n_out
    limit = max(1, math.ceil(total / reuse))
    iterations = math.ceil(total / limit)
    multipliers = min(nonzero, limit) if skip_zeros else limit
    per = dsp_per_product(x_w, w_w)
    dsp = multipliers * per
    lut = multipliers * acc_w + (0 if per else multipliers * int(0.6 * x_w * w_w))
    if skip_zeros:  # every multiplier picks its x and its (constant) weight out of `iterations` candidates
        candidates = iterations
        lut += multipliers * (x_w + w_w) * math.ceil(candidates / 4) if candidates > 1 else 0
    else:  # multiplier (a, o) of the tile reads x[u tile_in + a] and feeds accumulator column o
        tile_out = math.gcd(multipliers, n_out)
        tile_in = multipliers // tile_out
        candidates = math.ceil(n_in / tile_in)  # the input tiles u, one x mux per a
        out_tiles = math.ceil(n_out / tile_out)  # the accumulators a column reads and writes back
        lut += tile_in * x_w * math.ceil(candidates / 4) if candidates > 1 else 0
        lut += tile_out * acc_w * math.ceil(out_tiles / 4) if out_tiles > 1 else 0
    t_sel = t_mux(candidates)
    t_mul = T_DSP_MUL if per else t_lut_mul(x_w, w_w)
    bram = 0
    if skip_zeros:  # the adder trees of the unrolled layer remain; only their inputs are time-shared
        fan_in = max(nonzero // max(n_out, 1), 1)
        # ...plus, when the products of one output span several cycles, the add of the partial sums
        delay = t_sel + t_mul + tree_depth(fan_in + 1) * t_add(acc_w) + (t_add(acc_w) if iterations > 1 else 0)
    else:  # the column's sum of tile_in products and the accumulator it selected (that mux runs beside the
        # multiply), plus the weight ROM (`multipliers` words per cycle, RF deep)
        delay = max(t_sel + t_mul, t_mux(out_tiles)) + tree_depth(tile_in + 1) * t_add(acc_w)
        bram, rom_lut, _, _ = rom(iterations, w_w * multipliers, 1, timing)
        lut += rom_lut
    ff = n_out * acc_w + multipliers * (x_w + w_w)
    # the token loop around the pipelined reuse loop is not pipelined itself (the accumulator reset and the
    # output loop make the nest imperfect): every token but the last also drains the pipeline and re-enters it
    cycles = iterations * tokens - 1 + (tokens - 1) * (max(timing.stages(delay), 1) + 1)
    return Cost(delay_ns=delay, cycles=cycles, ii=cycles + 1, dsp=dsp, lut=lut, ff=ff,
                bram18=bram, notes=[f"{multipliers} multipliers x {iterations} cycles"
                                    + ("" if skip_zeros else f", tiles of {tile_in} inputs x {tile_out} outputs")])


def dense_reuse_sparse(n_out: int, tokens: int, rows: np.ndarray, cols: np.ndarray, reuse: int, x_w: int,
                       w_w: int, acc_w: int, timing: Timing) -> Cost:
    """accelgen's resource kernel for weights with zeros: only the nonzero weights, in lanes of `reuse`
    consecutive entries (sorted by output), one multiplier per lane (layers.resource_lanes). Measured on the
    generated layout: each multiplier selects among the distinct inputs of its lane, and each accumulator sums,
    per cycle, the lanes that can write it, each a mux over that lane's outputs."""
    lanes = len(rows) // reuse

    def distinct_per_lane(a: np.ndarray) -> np.ndarray:
        s = np.sort(a.reshape(lanes, reuse), axis=1) if reuse > 1 else a.reshape(lanes, 1)
        return 1 + np.count_nonzero(np.diff(s, axis=1), axis=1)

    x_candidates = int(distinct_per_lane(rows).max())
    outs_per_lane = int(distinct_per_lane(cols).max())
    # entries are sorted by output, so the (lane, output) pairs that occur are where either changes
    keys = np.repeat(np.arange(lanes, dtype=np.int64), reuse) * n_out + cols
    first = np.concatenate([[True], np.diff(keys) != 0])
    writers = np.bincount(cols[first], minlength=n_out)
    per_acc = int(writers.max(initial=1))
    per = dsp_per_product(x_w, w_w)
    dsp = lanes * per
    lut = lanes * acc_w + (0 if per else lanes * int(0.6 * x_w * w_w))
    lut += lanes * x_w * math.ceil(x_candidates / 4) if x_candidates > 1 else 0
    lut += int(writers.sum()) * acc_w * (1 + math.ceil(outs_per_lane / 4) if outs_per_lane > 1 else 1)
    delay = t_mux(x_candidates) + (T_DSP_MUL if per else t_lut_mul(x_w, w_w)) + t_mux(outs_per_lane) + \
        tree_depth(per_acc + 1) * t_add(acc_w)
    # the weight ROM plus the two index ROMs (16 bits each), `lanes` words per cycle, RF deep
    bram, rom_lut, _, _ = rom(reuse, (w_w + 32) * lanes, 1, timing)
    lut += rom_lut
    ff = n_out * acc_w + lanes * (x_w + w_w)
    cycles = reuse * tokens - 1 + (tokens - 1) * (max(timing.stages(delay), 1) + 1)
    return Cost(delay_ns=delay, cycles=cycles, ii=cycles + 1, dsp=dsp, lut=lut, ff=ff, bram18=bram,
                notes=[f"{lanes} multipliers x {reuse} cycles over {len(rows)} entries (zero weights skipped)"])


def pipeline_latency(costs: list[Cost], timing: Timing) -> int:
    """A pipelined top with every function inlined: combinational paths chain across kernels, so the depth is
    the whole chain cut into clock periods, plus the cycles no chaining removes, plus the output register."""
    return timing.stages(T_IO + sum(c.delay_ns for c in costs)) + sum(c.cycles for c in costs) + 1


def dataflow_latency(costs: list[Cost], timing: Timing) -> tuple[int, list[int]]:
    """One process per kernel: each takes its loop cycles plus its own depth plus a start/finish cycle; the
    top's latency is their sum, its interval the slowest process."""
    each = [c.cycles + max(timing.stages(c.delay_ns), 1) + 1 for c in costs]
    return sum(each), each


def table_activation(entries: int, out_w: int, acc_w: int, parallel: int, timing: Timing) -> Cost:
    """index = floor(x * 2**f) - offset, clamped, then a ROM read per output; one ROM copy per reader when in
    LUTs, one per two readers in block RAM."""
    bram, lut, cycles, t_read = rom(entries, out_w, parallel, timing)
    delay = 2 * t_add(acc_w) + t_read  # offset subtraction and clamp compare
    return Cost(delay_ns=delay, cycles=cycles, bram18=bram, lut=lut + parallel * 2 * acc_w,
                notes=[f"table {entries}x{out_w} bit, {'BRAM' if bram else 'LUT ROM'}, {parallel} readers"])


def softmax(rows: int, n: int, x_w: int, t_w: int, log2e_w: int, exp_entries: int, exp_w: int, result_w: int,
            sum_w: int, recip_entries: int, recip_w: int, timing: Timing) -> Cost:
    """One row per iteration (pipelined II=1): max tree, n subtract and log2(e) multiplies, n exp-table reads
    and shifts, the sum tree, a leading-one search, one reciprocal read, n multiplies and shifts."""
    dsp_log2e = dsp_per_product(x_w, log2e_w)  # log2e_w = 0: no scaling multiply (index sliced from x)
    dsp_out = dsp_per_product(result_w, recip_w)
    exp_bram, exp_lut, exp_cycles, t_exp = rom(exp_entries, exp_w, n, timing)
    rec_bram, rec_lut, rec_cycles, t_rec = rom(recip_entries, recip_w, 1, timing)
    delay = (tree_depth(n) * t_add(x_w) + t_add(x_w) + (T_DSP_MUL if dsp_log2e else t_lut_mul(x_w, log2e_w) if log2e_w else 0.0)
             + t_exp + t_mux(t_w) + tree_depth(n) * t_add(sum_w) + t_mux(sum_w) * 2 + t_rec
             + (T_DSP_MUL if dsp_out else t_lut_mul(result_w, recip_w)) + t_mux(sum_w))
    lut = (n * 2 * x_w + n * exp_w * 3 + n * sum_w + sum_w * 4 + n * result_w * 3 + exp_lut + rec_lut
           + (0 if dsp_log2e else n * int(0.6 * x_w * log2e_w)) + (0 if dsp_out else n * int(0.6 * result_w * recip_w)))
    return Cost(delay_ns=delay, cycles=(rows - 1) + exp_cycles + rec_cycles, ii=1,
                dsp=n * (dsp_log2e + dsp_out), lut=lut, ff=n * (x_w + result_w) + sum_w, bram18=exp_bram + rec_bram,
                notes=[f"exp table {exp_entries}, reciprocal table {recip_entries}"])


def conv2d(out_pixels: int, in_pixels: int, taps: int, out_c: int, weights_raw: np.ndarray, x_w: int, w_w: int,
           acc_w: int, timing: Timing, groups: int = 1) -> Cost:
    """Pipelined over output pixels at II=1, every output channel and tap unrolled; the input is a fully
    partitioned array, so each of the `taps` input reads (in_c * k_h * k_w) goes through a multiplexer over the
    pixels it can land on. A grouped convolution sums taps / groups products per output (its own group's channels)
    and has one multiplier per weight it stores (out_c * taps / groups): depthwise, k_h * k_w per channel."""
    nz = len(weights_raw)
    dsp, lut, t_mul = products(weights_raw, nz, x_w, w_w, constant=True)
    sel = min(out_pixels, in_pixels)
    delay = t_mux(sel) + t_mul + tree_depth(max(taps // groups, 1) + 1) * t_add(acc_w)
    lut += nz * acc_w + taps * x_w * math.ceil(sel / 4)
    return Cost(delay_ns=delay, cycles=out_pixels - 1, dsp=dsp, lut=lut, ff=out_c * out_pixels * 0 + out_c * acc_w,
                notes=[f"{nz} multipliers per pixel, {out_pixels} pixels"])


def maxpool(channels: int, out_pixels: int, window: int, x_w: int, in_pixels: int, timing: Timing) -> Cost:
    trips = channels * out_pixels
    delay = t_mux(channels * in_pixels) + tree_depth(window) * t_add(x_w)
    return Cost(delay_ns=delay, cycles=trips - 1, lut=window * x_w * (2 + math.ceil(min(trips, in_pixels) / 4)),
                ff=x_w * window)


def avgpool(channels: int, out_pixels: int, window: int, x_w: int, in_pixels: int, sum_w: int,
            scaling: tuple[int, int, int], n_scales: int, timing: Timing) -> Cost:
    """ag::avgpool2d: maxpool's loop and input muxes, an adder tree over the window instead of the max chain, then
    one multiply by 1/count: scaling = (pre_w, scale_w, scale raw). A single constant is a constant multiply;
    per-position constants (n_scales > 1) are a small ROM indexed by the position and a general multiplier."""
    trips = channels * out_pixels
    pre_w, scale_w, raw = scaling
    if n_scales == 1:
        dsp, m_lut, t_mul = products(np.array([raw]), 1, pre_w, scale_w, constant=True)
        bram, rom_lut, rom_cycles, t_rom = 0, 0, 0, 0.0
    else:
        dsp, m_lut, t_mul = products(None, 1, pre_w, scale_w, constant=False)
        bram, rom_lut, rom_cycles, t_rom = rom(n_scales, scale_w, 1, timing)
    delay = t_mux(channels * in_pixels) + tree_depth(window) * t_add(sum_w) + max(t_mul, t_rom)
    lut = window * x_w * (1 + math.ceil(min(trips, in_pixels) / 4)) + window * sum_w + m_lut + rom_lut
    return Cost(delay_ns=delay, cycles=trips - 1 + rom_cycles, dsp=dsp, lut=lut, ff=sum_w + pre_w, bram18=bram,
                notes=[f"{trips} sums of {window}, {n_scales} reciprocal constant{'s' if n_scales > 1 else ''}"])


def compare_select(n: int, width: int, kind: str) -> Cost:
    """n parallel compare-and-select elements (UNROLL). A w-bit comparator, adder or subtractor is w LUTs on the
    carry chain; a 2:1 mux of w bits w / 2 LUT6_2, a 3:1 mux w. compare (Equal, Less...: a comparator, a 1-bit
    result), max / min (a comparator and a 2:1 mux), clip (two comparators beside each other and a 3:1 mux), neg (a
    subtractor from zero), abs (a negation and a mux on the sign bit), select (Where: a 2:1 mux)."""
    per, delay = {"compare": (width, t_add(width)), "max": (width + width // 2, t_add(width) + 0.3),
                  "min": (width + width // 2, t_add(width) + 0.3), "clip": (3 * width, t_add(width) + 0.3),
                  "neg": (width, t_add(width)), "abs": (width + width // 2, t_add(width) + 0.3),
                  "select": (max(width // 2, 1), 0.3)}[kind]
    return Cost(delay_ns=delay, lut=n * per)


def scaled_select(n: int, x_w: int, scale_w: int, out_w: int, raw: np.ndarray | None, gate_w: int = 0,
                  clamp_w: int = 0) -> Cost:
    """LeakyRelu, PRelu, HardSigmoid, HardSwish (UNROLL over n): one product by a constant per element (`raw`
    holds each element's constant; None: a variable operand, a general multiplier), then a select on the sign of
    x (LeakyRelu, PRelu) or, with clamp_w, an add of the offset and a clamp to [0, 1] (two comparators, a mux);
    HardSwish also multiplies x by the gate_w-bit gate."""
    dsp, lut, t_mul = products(raw, n, x_w, scale_w, constant=raw is not None)
    delay = t_mul
    if clamp_w:
        delay += 2 * t_add(clamp_w) + 0.3
        lut += n * 3 * clamp_w
    else:
        delay += 0.3
        lut += n * (out_w // 2 + 1)
    if gate_w:
        g_dsp, g_lut, g_mul = products(None, n, x_w, gate_w, constant=False)
        dsp, lut, delay = dsp + g_dsp, lut + g_lut, delay + g_mul
    return Cost(delay_ns=delay, dsp=dsp, lut=lut, notes=[f"{n} elements"])


def elementwise(n: int, width: int, kind: str) -> Cost:
    if kind == "add":
        return Cost(delay_ns=t_add(width), lut=n * width)
    if kind == "relu":
        return Cost(delay_ns=0.3, lut=n * width // 2)
    return Cost()


def thresholds(n: int, steps: int, x_w: int, out_w: int) -> Cost:
    """ag::quantize_thresholds (UNROLL over n values): per value, `steps` compares of x with constants (a carry
    chain, about x_w / 2 LUTs each), then the level table read as a mux of steps + 1 constants."""
    return Cost(delay_ns=t_add(x_w) + t_mux(steps + 1),
                lut=n * (steps * math.ceil(x_w / 2) + out_w * math.ceil((steps + 1) / 4)),
                notes=[f"{n} x {steps} threshold compares"])


def binary(n: int, a_w: int, b_w: int, out_w: int, kind: str, constant_raw: np.ndarray | None = None) -> Cost:
    """ag::elementwise (UNROLL over n): n adders / subtractors, or n products. A constant operand makes the
    products constant multiplications (zeros folded away, +-2**k shifts); two variables need a multiplier each."""
    if kind in ("add", "sub"):
        width = max(a_w, b_w) + 1
        return Cost(delay_ns=t_add(width), lut=n * width)
    if constant_raw is not None:
        nonzero = constant_raw[constant_raw != 0]
        dsp, lut, delay = products(nonzero, len(nonzero), a_w, b_w, constant=True)
        return Cost(delay_ns=delay if len(nonzero) else 0.0, dsp=dsp, lut=lut,
                    notes=[f"{len(nonzero)} constant multiplications"])
    per = dsp_per_product(a_w, b_w)
    return Cost(delay_ns=T_DSP_MUL if per else t_lut_mul(a_w, b_w), dsp=n * per,
                lut=0 if per else n * int(0.6 * a_w * b_w), notes=[f"{n} multipliers"])


def scale_shift(outer: int, scale_raw: np.ndarray, x_w: int, a_w: int, sum_w: int, timing: Timing) -> Cost:
    """ag::scale_shift (unfolded BatchNormalization): per element x * a[c] + b[c], channels and inner elements
    unrolled, the (usually single) batch loop not pipelined. `scale_raw` holds a[c] for every element of one
    batch entry."""
    n = len(scale_raw)
    nonzero = scale_raw[scale_raw != 0]
    dsp, lut, t_mul = products(nonzero, len(nonzero), x_w, a_w, constant=True)
    delay = t_mul + t_add(sum_w)
    return Cost(delay_ns=delay, cycles=(outer - 1) * (max(timing.stages(delay), 1) + 1), dsp=dsp,
                lut=lut + n * sum_w, notes=[f"{len(nonzero)} constant products per batch entry"])


def reduction(outer: int, r: int, inner: int, x_w: int, sum_w: int, mean: tuple[int, int, int] | None,
              unrolled: bool, timing: Timing, extremum: str | None = None) -> Cost:
    """ag::reduce_sum / reduce_mean / reduce_extremum: the inner loop pipelined (II=1) inside a plain outer loop,
    the R-input sum unrolled into an adder tree, then (mean) one constant multiply by 1/R: mean = (pre_w, scale_w,
    scale raw). An extremum ("max" or "min") is a chain of R - 1 compare-and-selects at the input's width (the
    kernel's loop carries `best`; HLS balances sums into trees, not selections)."""
    if extremum:
        lut = (r - 1) * x_w
        delay = (r - 1) * (t_add(x_w) + 0.3)
        what = {"max": "maxima", "min": "minima"}[extremum]
    else:
        lut = r * sum_w
        delay = tree_depth(r) * t_add(sum_w)
        what = "sums"
    dsp = 0
    if mean is not None:
        pre_w, scale_w, raw = mean
        dsp, m_lut, t_mul = products(np.array([raw]), 1, pre_w, scale_w, constant=True)
        delay += t_mul
        lut += m_lut
    trips = outer * inner
    if unrolled:
        return Cost(delay_ns=delay, dsp=dsp * trips, lut=lut * trips, ff=0,
                    notes=[f"{trips} {what} of {r}, unrolled"])
    delay += t_mux(inner)  # x[(o * r + k) * inner + i]: a mux over i per tree input
    lut += r * x_w * math.ceil(inner / 4) if inner > 1 else 0
    cycles = inner * outer - 1 + (outer - 1) * (max(timing.stages(delay), 1) + 1)
    return Cost(delay_ns=delay, cycles=cycles, dsp=dsp, lut=lut, ff=x_w if extremum else sum_w,
                notes=[f"{trips} {what} of {r}"])


def matmul(batches: int, m: int, k: int, n: int, a_w: int, b_w: int, acc_w: int, timing: Timing) -> Cost:
    """ag::matmul (MatMul of two activations): one output row per iteration of a loop over batches * m rows
    pipelined at II=1, each row n dot products of length k: n * k variable products and n adder trees of depth
    ceil(log2 k). Like dense_latency, the row loop stays a loop unless a pipelined top unrolls it."""
    per = dsp_per_product(a_w, b_w)
    products_n = n * k
    t_mul = T_DSP_MUL if per else t_lut_mul(a_w, b_w)
    delay = t_mul + tree_depth(k) * t_add(acc_w)
    lut = products_n * acc_w + (0 if per else products_n * int(0.6 * a_w * b_w))
    return Cost(delay_ns=delay, cycles=batches * m - 1, dsp=products_n * per, lut=lut, ff=n * acc_w,
                notes=[f"{products_n} multipliers per row, {batches * m} rows"])


def normalized_function(n: int, mag_w: int, entries: int, entry_w: int, num_w: int, out_w: int, shifts: int,
                        timing: Timing) -> Cost:
    """ag::divide / reciprocal / square_root (UNROLL over n values): per value a leading-one search over the
    mag_w bits of |x| (a priority encoder, a mux tree deep), the normalising shift that picks the table index,
    one ROM read, for a division a num_w x entry_w product and a negation (num_w = 0: none), and the final shift
    over `shifts` positions into the output (a barrel shifter of out_w bits, log2(shifts) mux levels)."""
    bram, rom_lut, cycles, t_read = rom(entries, entry_w, n, timing)
    per = dsp_per_product(num_w, entry_w) if num_w else 0
    t_mul = (T_DSP_MUL if per else t_lut_mul(num_w, entry_w)) + t_add(num_w + entry_w) if num_w else 0.0
    delay = t_add(mag_w) + 2 * t_mux(mag_w) + t_read + t_mul + t_mux(shifts) + t_add(out_w)
    lut = n * (mag_w * 3 + out_w * max(tree_depth(shifts), 1) + (num_w + entry_w if num_w else 0)
               + (0 if per or not num_w else int(0.6 * num_w * entry_w))) + rom_lut
    return Cost(delay_ns=delay, cycles=cycles, dsp=n * per, lut=lut, bram18=bram,
                notes=[f"table {entries}x{entry_w} bit, {n} readers"])


def exponential(n: int, x_w: int, log2e_w: int, log2e_raw: int, entries: int, entry_w: int, out_w: int,
                shifts: int, timing: Timing) -> Cost:
    """ag::exponential (UNROLL over n values): softmax's exp per value: x * log2(e) (a constant product), the
    rounding to t, one ROM read at t's top fractional bits and a shift over `shifts` positions."""
    bram, rom_lut, cycles, t_read = rom(entries, entry_w, n, timing)
    dsp, m_lut, t_mul = products(np.full(n, log2e_raw), n, x_w, log2e_w, constant=True)
    delay = t_mul + t_add(x_w + log2e_w) + t_read + t_mux(shifts) + t_add(out_w)
    return Cost(delay_ns=delay, cycles=cycles, dsp=dsp, lut=m_lut + rom_lut + n * out_w * max(tree_depth(shifts), 1),
                bram18=bram, notes=[f"exp table {entries}x{entry_w} bit, {n} readers"])
