"""One-shot weight pruning: zero the least important weights of Dense, Conv/FusedConv, constant-weight MatMul and
MultiHeadAttention projection layers, so that a constant-weight accelerator builds no multiplier for them.

Every layer weight is seen as a matrix W [K inputs, N outputs] (a Dense's own layout; a Conv's W [M, C/g, *k] as
[C/g * prod(k), M]). Methods:
- "magnitude": the smallest |w| go, over all layers at once (scope="global") or each layer to `sparsity`.
- "nm": N:M structure, N weights kept of every M consecutive inputs of each output (2:4 keeps half).
- "block": whole (rows, cols) blocks of the [K, N] matrix go, by mean |w|.
With `calibration` data each layer is instead pruned by second-order (OBS) saliency and its remaining weights
are updated to keep the layer's output on that data (SparseGPT, see prune_obs.py), layer after layer on the
inputs the already-pruned model produces. `heads=True` removes whole attention heads instead of single projection
weights. Biases are never changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from accelgen.errors import AccelgenError, OptionError
from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.interpreter import run
from accelgen.ir.ops.attention import MultiHeadAttention
from accelgen.ir.ops.conv import windows
from accelgen.passes.prune_obs import obs_prune, refit

METHODS = ("magnitude", "nm", "block")
SCOPES = ("global", "layer")
MHA_WEIGHTS = {"Wq": MultiHeadAttention.W_Q, "Wk": MultiHeadAttention.W_K, "Wv": MultiHeadAttention.W_V,
               "Wo": MultiHeadAttention.W_O}


@dataclass(eq=False)
class Layer:
    """One prunable weight: `node.inputs[slot]`, named `name` (the node's name; "node.Wq" for attention)."""

    name: str
    node: Node
    slot: int

    @property
    def value(self) -> Value:
        return self.node.inputs[self.slot]

    @property
    def is_conv(self) -> bool:
        return self.node.op_type in ("Conv", "FusedConv")

    @property
    def groups(self) -> int:
        return self.conv_op.group if self.is_conv else 1

    @property
    def conv_op(self):
        return self.node.op.conv if self.node.op_type == "FusedConv" else self.node.op

    def matrix(self, w: np.ndarray) -> np.ndarray:
        """W as [K, N] (float64 copy)."""
        w = np.asarray(w, np.float64)
        return w.reshape(w.shape[0], -1).T.copy() if self.is_conv else w.copy()

    def unmatrix(self, m: np.ndarray) -> np.ndarray:
        shape, dtype = self.value.shape, self.value.dtype.np_dtype
        return (m.T.reshape(shape) if self.is_conv else m).astype(dtype)


def prunable_layers(graph: Graph) -> list[Layer]:
    """Every constant layer weight pruning may touch, in graph order."""
    layers, seen = [], set()
    for node in graph.nodes:
        op = node.op_type
        slots: dict[str, int] = {}
        if op in ("Dense", "Conv", "FusedConv") or (op == "MatMul" and len(node.inputs) == 2):
            slots = {"": 1}
        elif op == "MultiHeadAttention":
            slots = {f".{k}": i for k, i in MHA_WEIGHTS.items()}
        for suffix, slot in slots.items():
            v = node.inputs[slot] if slot < len(node.inputs) else None
            if v is None or not v.is_constant or v.data.dtype.kind != "f" or id(v) in seen:
                continue
            if op == "MatMul" and v.data.ndim != 2:
                continue
            seen.add(id(v))  # a weight shared by two layers is pruned once, by its first user
            layers.append(Layer(node.name + suffix, node, slot))
    return layers


# -- validation ---------------------------------------------------------------------------------------------------
def _pair(value, what: str, example: str) -> tuple[int, int]:
    if isinstance(value, str):
        value = value.replace(":", "x").split("x")
    try:
        a, b = (int(x) for x in value)
        if any(isinstance(x, float) and not float(x).is_integer() for x in value):
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(f"{what} must be two integers, e.g. {example}; got {value!r}") from None
    return a, b


def _select(graph: Graph, layers: Sequence[str] | str | None) -> list[Layer]:
    candidates = prunable_layers(graph)
    if layers is None:
        return candidates
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else list(layers)
    chosen, unknown = [], []
    for name in names:
        hits = [c for c in candidates if c.name == name or c.node.name == name]
        if not hits:
            unknown.append(name)
        chosen += [h for h in hits if h not in chosen]
    if unknown:
        known = sorted({c.node.name for c in candidates} | {c.name for c in candidates})
        shown = ", ".join(map(repr, known[:12])) + (", ..." if len(known) > 12 else "")
        raise OptionError(f"unknown layer(s) {', '.join(map(repr, unknown))}; prunable layers are {shown or 'none'}")
    return [c for c in candidates if c in chosen]


def _tiles(layer: Layer, method: str, n_m: tuple[int, int], block: tuple[int, int]) -> bool:
    k, n = layer.matrix(layer.value.data).shape
    if method == "nm":
        return k % n_m[1] == 0
    if method == "block":
        return k % block[0] == 0 and n % block[1] == 0
    return True


def _check_request(graph, sparsity, method, n_m, block, scope, heads) -> tuple[float, tuple[int, int], tuple[int, int]]:
    if not isinstance(graph, Graph):
        raise OptionError(f"prune() needs a Graph (from accelgen.load), got {type(graph).__name__}")
    if any(n.op_type == "Quantized" for n in graph.nodes):
        raise OptionError("prune the float graph, then quantize it: this graph is already quantized")
    if method not in METHODS:
        raise OptionError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if scope not in SCOPES:
        raise OptionError(f"scope must be 'global' or 'layer'; got {scope!r}")
    try:
        sparsity = float(sparsity)
    except (TypeError, ValueError):
        raise OptionError(f"sparsity must be a number in [0, 1); got {sparsity!r}") from None
    if not 0.0 <= sparsity < 1.0:
        raise OptionError(f"sparsity must be in [0, 1) (the fraction of weights set to zero); got {sparsity}")
    n, m = _pair(n_m, "n_m", "(2, 4) for 2:4")
    if not 1 <= n <= m:
        raise OptionError(f"N:M = {n}:{m} keeps N of every M weights: it needs 1 <= N <= M")
    rows, cols = _pair(block, "block", "(4, 4)")
    if rows < 1 or cols < 1:
        raise OptionError(f"block sizes must be positive, got {rows}x{cols}")
    if not isinstance(heads, bool):
        raise OptionError(f"heads must be True or False; got {heads!r}")
    return sparsity, (n, m), (rows, cols)


# -- masks (True = keep) ------------------------------------------------------------------------------------------
def nm_mask(scores: np.ndarray, n: int, m: int, name: str = "") -> np.ndarray:
    """Keep the N highest-scoring of every M consecutive inputs (rows) of each output column."""
    k, cols = scores.shape
    if k % m:
        raise OptionError(f"layer {name!r}: its {k} inputs are not a multiple of M={m} for N:M pruning")
    grouped = scores.reshape(k // m, m, cols)
    order = np.argsort(-grouped, axis=1, kind="stable")
    keep = np.zeros_like(grouped, dtype=bool)
    np.put_along_axis(keep, order[:, :n], True, axis=1)
    return keep.reshape(k, cols)


def block_scores(scores: np.ndarray, rows: int, cols: int, name: str = "") -> np.ndarray:
    k, n = scores.shape
    if k % rows or n % cols:
        raise OptionError(f"layer {name!r}: block {rows}x{cols} does not divide its weight matrix {k}x{n} "
                          "(inputs x outputs)")
    return scores.reshape(k // rows, rows, n // cols, cols).mean(axis=(1, 3))


def expand_blocks(keep: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.repeat(np.repeat(keep, rows, axis=0), cols, axis=1)


def lowest(scores: Sequence[np.ndarray], fraction: float) -> list[np.ndarray]:
    """Keep-masks dropping the `fraction` lowest scores over all arrays together (ties: earlier first)."""
    flat = np.concatenate([s.reshape(-1) for s in scores]) if scores else np.zeros(0)
    drop = int(round(fraction * flat.size))
    keep = np.ones(flat.size, bool)
    keep[np.argsort(flat, kind="stable")[:drop]] = False
    out, start = [], 0
    for s in scores:
        out.append(keep[start:start + s.size].reshape(s.shape))
        start += s.size
    return out


def _plan_masks(mats: dict[str, np.ndarray], layers: list[Layer], sparsity, method, n_m, block, scope):
    """Magnitude masks for every layer (also the per-layer sparsity the calibrated path aims at)."""
    if method == "nm":
        return {l.name: nm_mask(np.abs(mats[l.name]), *n_m, l.name) for l in layers}
    if method == "block":
        scores = [block_scores(np.abs(mats[l.name]), *block, l.name) for l in layers]
    else:
        scores = [np.abs(mats[l.name]) for l in layers]
    keeps = lowest(scores, sparsity) if scope == "global" else [lowest([s], sparsity)[0] for s in scores]
    if method == "block":
        keeps = [expand_blocks(k, *block) for k in keeps]
    return {l.name: k for l, k in zip(layers, keeps)}


# -- heads --------------------------------------------------------------------------------------------------------
def _head_saliency(node: Node, weights: dict[int, np.ndarray], contexts: list[np.ndarray] | None) -> np.ndarray:
    """How much each head contributes: with data, the energy of its share of the output (context_h Wo_h); without,
    ||Wv_h|| ||Wo_h|| (the path its values take to the output)."""
    op = node.op
    wo = weights[MultiHeadAttention.W_O].reshape(op.num_heads, op.head_dim, -1)
    if contexts:
        sal = np.zeros(op.num_heads)
        for c in contexts:
            ch = c.reshape(-1, op.num_heads, op.head_dim)
            sal += np.array([np.sum((ch[:, h] @ wo[h]) ** 2) for h in range(op.num_heads)])
        return sal
    wv = weights[MultiHeadAttention.W_V].reshape(-1, op.num_heads, op.head_dim)
    return np.array([np.linalg.norm(wv[:, h]) * np.linalg.norm(wo[h]) for h in range(op.num_heads)])


def head_masks(node: Node, dead: Sequence[int]) -> dict[int, np.ndarray]:
    """Keep-masks in [K, N] form zeroing heads `dead`: their columns of Wq/Wk/Wv and rows of Wo."""
    op, masks = node.op, {}
    for slot in (MultiHeadAttention.W_Q, MultiHeadAttention.W_K, MultiHeadAttention.W_V, MultiHeadAttention.W_O):
        keep = np.ones(node.inputs[slot].shape, bool)
        for h in dead:
            cut = slice(h * op.head_dim, (h + 1) * op.head_dim)
            if slot == MultiHeadAttention.W_O:
                keep[cut, :] = False
            else:
                keep[:, cut] = False
        masks[slot] = keep
    return masks


# -- calibration inputs -------------------------------------------------------------------------------------------
def _batches(graph: Graph, calibration) -> list[dict[str, np.ndarray]]:
    from accelgen.errors import QuantizationError
    from accelgen.quant.calibrate import split_batches

    try:
        return split_batches(graph, calibration)
    except QuantizationError as e:
        raise OptionError(str(e)) from None


def _node_inputs(graph: Graph, node: Node, batches) -> list[list[np.ndarray | None]]:
    """The float arrays `node` receives on every calibration batch, from running the graph as it is now."""
    wanted = {id(v) for v in node.inputs if v is not None and not v.is_constant}
    got = []
    for feeds in batches:
        seen: dict[int, np.ndarray] = {}

        def observe(v: Value, a: np.ndarray, seen=seen) -> None:
            if id(v) in wanted:
                seen[id(v)] = a

        run(graph, feeds, observe=observe)
        got.append([None if v is None else v.data if v.is_constant else seen[id(v)] for v in node.inputs])
    return got


def layer_rows(layer: Layer, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """The layer's input rows X [P, K] (one entry per conv group), as its W [K, N] multiplies them."""
    node = layer.node
    if node.op_type == "MultiHeadAttention":
        if layer.slot == MultiHeadAttention.W_O:
            x = node.op._float_stages(args)["heads"]
        else:
            x = args[MultiHeadAttention.X_Q if layer.slot == MultiHeadAttention.W_Q else MultiHeadAttention.X_KV]
        return [np.asarray(x, np.float64).reshape(-1, x.shape[-1])]
    x = np.asarray(args[0], np.float64)
    if not layer.is_conv:
        return [x.reshape(-1, x.shape[-1])]
    conv, w = layer.conv_op, args[1]
    g = conv.geometry(x.shape[2:], w.shape[2:])
    view = windows(x, g)  # (B, C, *out, *kernel)
    nd, cg = len(g.out), w.shape[1]
    cols = view.transpose(0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))  # (B, *out, C, *kernel)
    cols = cols.reshape(-1, x.shape[1], int(np.prod(g.kernel)))
    return [cols[:, i * cg:(i + 1) * cg].reshape(cols.shape[0], -1) for i in range(conv.group)]


# -- the pass -----------------------------------------------------------------------------------------------------
def prune(graph: Graph, sparsity: float = 0.75, method: str = "magnitude", n_m=(2, 4), block=(4, 4),
          calibration: Mapping[str, np.ndarray] | None = None, layers: Sequence[str] | str | None = None,
          scope: str = "global", heads: bool = False, damping: float = 0.01) -> Graph:
    """A copy of `graph` with weights pruned (see the module doc); `graph` is unchanged.

    `sparsity` is the fraction of weights zeroed (for method="nm" the N:M ratio fixes it instead; with heads=True
    it is the fraction of each attention layer's heads removed). `n_m=(N, M)` keeps N of every M weights along the
    inputs; `block=(rows, cols)` is a block of the [inputs, outputs] matrix. `layers` names the layers to prune
    (node names, or "node.Wq"/".Wk"/".Wv"/".Wo" for one attention projection); default: all of them whose weight
    matrix the N:M groups or blocks tile (the others stay dense; naming one that does not tile is an error).
    `calibration` (input name -> samples stacked on the batch axis) enables OBS reconstruction; `damping` is
    added to the Hessian diagonal as a fraction of its mean.
    """
    sparsity, n_m, block = _check_request(graph, sparsity, method, n_m, block, scope, heads)
    selected = _select(graph, layers)
    if layers is None:  # all layers by default: those N:M groups or blocks cannot tile stay dense (report shows 0%)
        fitting = [l for l in selected if _tiles(l, method, n_m, block)]
        if selected and not fitting:  # none fits: the first one's error says why
            _plan_masks({selected[0].name: selected[0].matrix(selected[0].value.data)}, selected[:1], sparsity,
                        method, n_m, block, scope)
        selected = fitting
    if not selected:
        raise OptionError("the graph has no prunable layers (Dense, Conv, MatMul by a constant, MultiHeadAttention "
                          "with constant weights)")
    out = graph.copy()
    by_name = {l.name: l for l in prunable_layers(out)}
    selected = [by_name[l.name] for l in selected]
    attention = [l for l in selected if l.node.op_type == "MultiHeadAttention"] if heads else []
    if heads and not attention:
        raise OptionError("heads=True prunes attention heads, but no MultiHeadAttention layer is selected")
    element = [l for l in selected if l not in attention]
    mats = {l.name: l.matrix(l.value.data) for l in selected}
    masks = _plan_masks(mats, element, sparsity, method, n_m, block, scope) if element else {}
    batches = _batches(out, calibration) if calibration is not None else None

    mha_nodes = list(dict.fromkeys(l.node for l in attention))
    for node in mha_nodes:
        dead = _choose_heads(out, node, sparsity, batches)
        for slot, keep in head_masks(node, dead).items():
            masks[next(l.name for l in attention if l.node is node and l.slot == slot)] = keep

    try:
        if batches is None:
            for l in selected:
                l.value.data = l.unmatrix(mats[l.name] * masks[l.name])
        else:
            _reconstruct(graph, out, selected, mats, masks, method, n_m, block, batches, damping, set(attention))
    except (np.linalg.LinAlgError, FloatingPointError) as e:
        raise OptionError(f"calibration-based reconstruction failed ({e}); try a larger damping") from None
    return out


def _choose_heads(graph: Graph, node: Node, sparsity: float, batches) -> list[int]:
    op = node.op
    count = int(round(sparsity * op.num_heads))
    if count == 0:
        return []
    weights = {s: np.asarray(node.inputs[s].data, np.float64) for s in MHA_WEIGHTS.values()}
    contexts = None
    if batches is not None:
        contexts = [op._float_stages(args)["heads"] for args in _node_inputs(graph, node, batches)]
    sal = _head_saliency(node, weights, contexts)
    return sorted(np.argsort(sal, kind="stable")[:count].tolist())


def _reconstruct(dense, graph, selected, mats, masks, method, n_m, block, batches, damping, fixed_layers):
    """OBS layer by layer, in graph order, on the inputs X~ the graph pruned so far produces, aiming at the dense
    layer's output X W on the dense model's inputs X: the least-squares weights W* for X~ (ridge-damped) are pruned
    with H = X~^T X~, so errors left by earlier layers are corrected too."""
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    slot_order = sorted(selected, key=lambda l: (order[id(l.node)], l.slot == MultiHeadAttention.W_O, l.slot))
    dense_layers = {l.name: l for l in prunable_layers(dense)}
    cache: dict[tuple[int, bool], tuple[list, list]] = {}
    for l in slot_order:
        is_wo = l.node.op_type == "MultiHeadAttention" and l.slot == MultiHeadAttention.W_O
        key = (id(l.node), is_wo)  # Wo's inputs depend on the pruned Wq/Wk/Wv: fetch after them
        ref = dense_layers[l.name]
        if key not in cache:
            cache = {key: (_node_inputs(graph, l.node, batches), _node_inputs(dense, ref.node, batches))}
        pruned_args, dense_args = cache[key]
        rows_pruned = [layer_rows(l, args) for args in pruned_args]
        rows_dense = [layer_rows(ref, args) for args in dense_args]
        w = mats[l.name]
        n_out = w.shape[1] // l.groups
        new = np.empty_like(w)
        keep = masks[l.name]
        for gi in range(l.groups):
            cols = slice(gi * n_out, (gi + 1) * n_out)
            k = w.shape[0]
            hessian, cross = np.zeros((k, k)), np.zeros((k, k))
            for xp, xd in zip(rows_pruned, rows_dense):
                hessian += xp[gi].T @ xp[gi]
                cross += xp[gi].T @ xd[gi]
            ridge = hessian + damping * max(float(np.mean(np.diag(hessian))), 1e-12) * np.eye(k)
            target = np.linalg.solve(ridge, cross @ w[:, cols])
            if l in fixed_layers or method == "block":
                swept = obs_prune(target, hessian, keep=keep[:, cols], damping=damping)
            elif method == "nm":
                swept = obs_prune(target, hessian, n_m=n_m, damping=damping)
            else:
                dropped = float(1.0 - keep[:, cols].mean())
                swept = obs_prune(target, hessian, sparsity=dropped, damping=damping)
            new[:, cols] = refit(target, hessian, swept != 0, damping)
        l.value.data = l.unmatrix(new)


# -- the report ---------------------------------------------------------------------------------------------------
@dataclass
class LayerSparsity:
    name: str
    op: str
    shape: tuple[int, ...]
    weights: int
    nonzeros: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.weights if self.weights else 0.0


@dataclass
class PruneReport:
    layers: list[LayerSparsity]
    outputs: list  # quant.report.OutputRow: errors, cosine and argmax agreement against the dense graph
    samples: int
    extra: dict = field(default_factory=dict)

    @property
    def weights(self) -> int:
        return sum(r.weights for r in self.layers)

    @property
    def nonzeros(self) -> int:
        return sum(r.nonzeros for r in self.layers)

    @property
    def nonzero_fraction(self) -> float:
        """Non-zero layer weights over all layer weights: the multiplier count of a constant-weight design."""
        return self.nonzeros / self.weights if self.weights else 1.0

    def text(self) -> str:
        lines = [f"{'layer':<48} {'op':<19} {'shape':<14} {'nonzero':>9} {'sparsity':>8}"]
        for r in self.layers:
            shape = "x".join(map(str, r.shape))
            lines.append(f"{r.name:<48} {r.op:<19} {shape:<14} {r.nonzeros:>9} {r.sparsity:>8.1%}")
        lines.append(f"{'total':<48} {'':<19} {'':<14} {self.nonzeros:>9} {1 - self.nonzero_fraction:>8.1%}")
        if self.outputs:
            lines.append(f"\noutputs against the dense model ({self.samples} samples):")
        for o in self.outputs:
            agree = "n/a" if o.agreement is None else f"{o.agreement:.4f}"
            lines.append(f"  {o.name}: max abs error {o.max_abs_error:.4g}, mean abs error {o.mean_abs_error:.4g}, "
                         f"cosine {o.cosine:.6f}, argmax agreement {agree}")
        return "\n".join(lines)

    __str__ = text


def prune_report(dense: Graph, pruned: Graph, data: Mapping[str, np.ndarray] | None) -> PruneReport:
    """Per-layer sparsity of `pruned`, and its outputs against `dense` on `data` (input name -> samples stacked
    along the batch axis; None: sparsity only)."""
    from accelgen.quant.report import compare, run_batches

    if len(dense.outputs) != len(pruned.outputs):
        raise OptionError("the dense and pruned graphs have different outputs: they are not the same model")
    rows = []
    for l in prunable_layers(pruned):
        w = l.value.data
        rows.append(LayerSparsity(l.name, l.node.op_type, tuple(w.shape), int(w.size), int(np.count_nonzero(w))))
    if data is None:
        return PruneReport(rows, [], 0)
    try:
        d_out, _ = run_batches(dense, data)
        p_out, _ = run_batches(pruned, data)
    except AccelgenError as e:
        raise OptionError(f"report data: {e}") from None
    names = [v.name for v in pruned.outputs]
    d_names = names if set(names) == set(d_out) else [v.name for v in dense.outputs]
    outputs = [compare(n, d_out[dn], p_out[n]) for n, dn in zip(names, d_names)]
    samples = outputs[0].samples if outputs else 0
    return PruneReport(rows, outputs, samples)


def nonzero_fraction(graph: Graph) -> float:
    """Non-zero weights over all weights of the prunable layers of `graph`."""
    total = sum(l.value.data.size for l in prunable_layers(graph))
    return sum(int(np.count_nonzero(l.value.data)) for l in prunable_layers(graph)) / total if total else 1.0


__all__ = ["LayerSparsity", "PruneReport", "nonzero_fraction", "prunable_layers", "prune", "prune_report"]
