"""smooth-quant: SmoothQuant / Outlier Suppression+ scale migration from a LayerNormalization into the projections
that read its output.

Transformers' LayerNorm outputs have a few channels far larger than the rest (their gamma is large), so a
per-tensor activation type spends its integer bits on them. Migration moves part of that range into the following
weights: with s_j = max|X_j|**alpha / max|W_j|**(1 - alpha) per channel j, the LN's gamma and beta are divided by
s_j and the rows j of every weight that reads the output (a Dense's W, a MultiHeadAttention's Wq/Wk/Wv) multiplied
by s_j. In real arithmetic x_j / s_j * (s_j W_jn) = x_j W_jn, so the model is unchanged. alpha = 1 moves all of
the activation range into the weights, alpha = 0 equalizes the weight rows (what helps when only the weights are
narrow).

Scales are rounded to powers of two by default: then dividing gamma and multiplying W are exact in float32 too
(the smoothed float model gives the same bits), and an HLS design can undo a scale with a shift. Post-norm blocks
also read the LN output in a residual Add; such uses get the original values back through a Mul by s (a
per-channel shift), and their scales are kept within a span of 2**`span` so that the Mul's constant is exact in a
(span + 1)-bit unsigned weight type.

The scales need per-channel activation maxima from calibration: `smooth_quant(graph, calibration)` measures them
and runs the pass. Run from the registry without them, the pass uses the bound every LN output satisfies,
|y_j| <= |gamma_j| * sqrt(C - 1) + |beta_j| (a standardized row of C values has no element beyond sqrt(C - 1)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.interpreter import run
from accelgen.ir.ops.attention import MultiHeadAttention
from accelgen.ir.ops.elementwise import Mul
from accelgen.ir.ops.fused import Dense
from accelgen.ir.ops.normalization import LayerNormalization
from accelgen.ir.types import is_float
from accelgen.ir.verify import verify
from accelgen.passes import register_pass
from accelgen.passes.base import Pass, PassResult
from accelgen.passes.cleanup import is_output, refuse

RULE = "smooth-quant"
MHA = MultiHeadAttention
# A weight slot of MultiHeadAttention reads the LN output through these input slots.
_MHA_WEIGHTS = {MHA.X_Q: (MHA.W_Q,), MHA.X_KV: (MHA.W_K, MHA.W_V)}


@dataclass
class Site:
    """A LayerNormalization whose output `y` (C channels) is read by projections."""

    ln: Node
    y: Value
    weights: list[tuple[Node, int]] = field(default_factory=list)  # (node, weight slot): rows j scale by s_j
    others: list[tuple[Node, int]] = field(default_factory=list)  # uses that need y itself (residual adds)

    @property
    def channels(self) -> int:
        return self.y.shape[-1]


def find_site(graph: Graph, ln: Node) -> Site | str:
    """The smoothing site at `ln`, or why there is none."""
    if not isinstance(ln.op, LayerNormalization):
        return "not a float LayerNormalization"
    y = ln.outputs[0]
    if not is_float(y.dtype) or y.type.rank < 1:
        return "its output is not a float tensor"
    if ln.op.axis % y.type.rank != y.type.rank - 1:
        return f"it normalizes from axis {ln.op.axis}, not over the last axis only"
    params = [v for v in ln.inputs[1:] if v is not None]
    if not all(v.is_constant for v in params):
        return "its scale or bias is not constant"
    if any(v.type.rank > y.type.rank or (v.type.rank and any(d != 1 for d in v.shape[:-1])) for v in params):
        return "its scale or bias varies along axes other than the channel axis"
    if is_output(graph, y):
        return "its output is a graph output"
    site = Site(ln, y)
    for node, slot in y.uses:
        site_weights = _absorbing(node, slot, site.channels)
        if site_weights:
            site.weights.extend((node, w) for w in site_weights)
        else:
            site.others.append((node, slot))
    if not site.weights:
        return "its output feeds no Dense or attention projection with a constant weight"
    return site


def _absorbing(node: Node, slot: int, channels: int) -> tuple[int, ...]:
    """The weight slots of `node` whose rows multiply its input `slot` (empty if the use cannot absorb a scale)."""
    if isinstance(node.op, Dense) and slot == 0:
        slots = (1,)
    elif isinstance(node.op, MultiHeadAttention) and slot in _MHA_WEIGHTS:
        slots = _MHA_WEIGHTS[slot]
    else:
        return ()
    ok = all(node.inputs[s] is not None and node.inputs[s].is_constant and node.inputs[s].type.rank == 2
             and node.inputs[s].shape[0] == channels for s in slots)
    return slots if ok else ()


def smoothing_scales(x_max: np.ndarray, w_max: np.ndarray, alpha: float, power_of_two: bool = True,
                     span: int | None = None) -> np.ndarray:
    """s_j = x_max_j**alpha / w_max_j**(1 - alpha); 1 where either maximum is 0. Rounded to powers of two (in the
    log domain) if asked, and then kept within 2**span of the largest."""
    x_max, w_max = np.abs(np.asarray(x_max, np.float64)), np.abs(np.asarray(w_max, np.float64))
    ok = (x_max > 0) & (w_max > 0) & np.isfinite(x_max) & np.isfinite(w_max)
    s = np.ones(np.broadcast_shapes(x_max.shape, w_max.shape))
    s[ok] = x_max[ok] ** alpha / w_max[ok] ** (1.0 - alpha)
    if power_of_two:
        e = np.round(np.log2(s))
        if span is not None:
            e = np.maximum(e, e.max() - span)
        s = np.exp2(e)
    return s


def channel_values(a: np.ndarray, channels: int) -> np.ndarray:
    """A LayerNorm parameter as its per-channel values, shape (C,) (max magnitude over any leading unit axes)."""
    a = np.asarray(a, np.float64)
    return np.broadcast_to(np.abs(a).reshape(-1, a.shape[-1] if a.ndim else 1).max(axis=0), (channels,))


class SmoothQuant(Pass):
    """Migrate activation range from LayerNorm outputs into the weights that read them (see the module doc).

    `maxima` maps an LN output's value name to its per-channel max |y_j| (shape (C,)); LNs missing from it use the
    data-free bound. `compensate` allows the Mul that gives residual uses their original values back."""

    name = RULE

    def __init__(self, maxima: Mapping[str, np.ndarray] | None = None, alpha: float = 0.5, *,
                 power_of_two: bool = True, compensate: bool = True, span: int = 6):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"smooth-quant: alpha must be in [0, 1], got {alpha!r}")
        self.maxima = dict(maxima or {})
        self.alpha, self.power_of_two, self.compensate, self.span = alpha, power_of_two, compensate, span

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for ln in [n for n in graph.nodes if n.op_type == "LayerNormalization"]:
            site = find_site(graph, ln)
            if isinstance(site, Site) and site.others and not (self.compensate and self.power_of_two):
                site = ("its output is also used elsewhere (a residual?), which needs a compensating Mul: "
                        "allow it with compensate=True and power-of-two scales")
            if isinstance(site, str):
                refuse(result, RULE, ln, site)
                continue
            scales = self.scales(site)
            if np.all(scales == 1.0):
                refuse(result, RULE, ln, "every scale is 1")
                continue
            apply_scales(graph, site, scales)
            result.record(RULE)
        if result.changed:
            graph.remove_unused_constants()
        return result

    def scales(self, site: Site) -> np.ndarray:
        c = site.channels
        x_max = self.maxima.get(site.y.name)
        if x_max is None:  # data-free: the bound of a standardized row, through the affine
            gamma, beta = site.ln.inputs[1], site.ln.inputs[2] if len(site.ln.inputs) > 2 else None
            x_max = channel_values(gamma.data, c) * math.sqrt(max(c - 1, 1))
            if beta is not None:
                x_max = x_max + channel_values(beta.data, c)
        w_max = np.max([np.abs(np.asarray(n.inputs[s].data, np.float64)).max(axis=1) for n, s in site.weights],
                       axis=0)
        return smoothing_scales(x_max, w_max, self.alpha, self.power_of_two, self.span if site.others else None)


def apply_scales(graph: Graph, site: Site, s: np.ndarray) -> None:
    """Divide the LN's scale and bias by s, multiply the absorbing weights' rows by s, and give the other uses
    y * s. New constants throughout: the originals may be shared."""
    ln, c = site.ln, site.channels
    for slot in (1, 2):
        v = ln.inputs[slot] if slot < len(ln.inputs) else None
        if v is not None:
            data = np.broadcast_to(v.data, v.shape[:-1] + (c,)) if v.type.rank else np.broadcast_to(v.data, (c,))
            ln.set_input(slot, graph.add_constant(f"{v.name}_smooth", (data / s).astype(v.data.dtype)))
    for node, slot in site.weights:
        w = node.inputs[slot]
        node.set_input(slot, graph.add_constant(f"{w.name}_smooth", (w.data * s[:, None]).astype(w.data.dtype)))
    if site.others:
        after = graph.nodes[graph.nodes.index(ln) + 1]
        scale = graph.add_constant(f"{site.y.name}_unsmooth_scale", s.astype(site.y.dtype.np_dtype))
        mul = graph.add_node(Mul(), [site.y, scale], name=f"{ln.name}/unsmooth", before=after)
        for node, slot in site.others:
            node.set_input(slot, mul.outputs[0])


def channel_maxima(graph: Graph, calibration: Mapping[str, np.ndarray], names) -> dict[str, np.ndarray]:
    """Per-channel max |v| over all but the last axis, for the values `names`, over the calibration batches."""
    from accelgen.quant.calibrate import split_batches

    wanted = set(names)
    maxima: dict[str, np.ndarray] = {}

    def observe(v: Value, array: np.ndarray) -> None:
        if v.name in wanted:
            m = np.abs(np.asarray(array, np.float64)).reshape(-1, array.shape[-1]).max(axis=0)
            maxima[v.name] = np.maximum(maxima[v.name], m) if v.name in maxima else m

    for feeds in split_batches(graph, calibration):
        run(graph, feeds, observe=observe)
    return maxima


def smooth_quant(graph: Graph, calibration: Mapping[str, np.ndarray], alpha: float = 0.5, *,
                 power_of_two: bool = True, compensate: bool = True) -> Graph:
    """A smoothed copy of the float `graph` (left unchanged), with scales from the per-channel maxima of every
    LayerNorm output on the calibration data (samples stacked along the batch axis, as for `quantize`)."""
    work = graph.copy()
    outputs = [n.outputs[0].name for n in work.nodes if isinstance(n.op, LayerNormalization)]
    maxima = channel_maxima(work, calibration, outputs)
    SmoothQuant(maxima, alpha, power_of_two=power_of_two, compensate=compensate).run(work)
    verify(work)
    return work


register_pass(SmoothQuant)
