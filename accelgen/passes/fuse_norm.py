"""Transformer-block fusions: `fuse-layernorm` and `fuse-gelu` rebuild LayerNormalization and Gelu from the
elementwise graphs exporters decompose them into.

fuse-layernorm:
- layernorm: (x - mean) / sqrt(var + eps), the PyTorch and ONNX-function form. mean = ReduceMean(x) and var =
  ReduceMean(d^2) over the same trailing axes, d = x - mean, d^2 as Pow(d, 2) or Mul(d, d), the division as Div
  or Mul by Reciprocal -> LayerNormalization(x, ones);
- layernorm_tf: x * k + (beta - mean * k) with k = Reciprocal(Sqrt(var + eps)) [* gamma], the form of TensorFlow's
  batch_normalization used by Keras, beta optional (then x * k - mean * k) -> LayerNormalization(x, gamma, beta);
- layernorm_from_instancenorm: InstanceNormalization(x, 1, 0), which tf2onnx emits for a rank-3 layer norm, is
  LayerNormalization over the axes from 2 on;
- layernorm_scale / layernorm_bias: a following Mul or Add by a constant that varies only over the normalized
  axes becomes the LayerNormalization's Scale or B.
fuse-gelu:
- gelu_erf: 0.5 * x * (1 + erf(x / sqrt(2))) -> Gelu(approximate='none');
- gelu_tanh: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) -> Gelu(approximate='tanh').
Products are flattened (any order and grouping of the factors, Div by constants) and the erf and tanh arguments
read as polynomials in x, so every factoring exporters use matches; the constants must agree with the exact ones to
float32 precision, else the rule refuses and names the constant.

These patterns use values more than once (x, and d = x - mean), which the general pattern matcher refuses for
interior values, so each rule here is an analyzer run at a root node: it follows the graph from the root, checks
every other use of the values it covers, and says why it refuses. Only float32 and float64 are fused: the fused ops
compute in one precision where a half-precision graph would round after every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.activations import Gelu
from accelgen.ir.ops.normalization import LayerNormalization
from accelgen.ir.types import F32, F64, TensorType
from accelgen.passes import register_pass
from accelgen.passes.fuse_dense import folds_exactly, scalar
from accelgen.passes.pattern import Match, RewritePass, Rule, const, escaping_use, op, val

REL_TOL = 1e-6  # how close a constant must be to the exact one: float32 rounding, with room for products of two
_STASH = {F32: 1, F64: 11}  # LayerNormalization stash_type (ONNX dtype code) that keeps the graph's precision


@dataclass
class Found:
    """What an analyzer recognized at a root: captured values, the nodes it covers besides the root (users before
    producers, so each is dead once those before it are gone), or the reason it refuses."""

    reason: str | None = None
    values: dict = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)


Analyzer = Callable[[Node], Found | None]  # None: the root is not a candidate at all (nothing to explain)


def _escaping(found: Found, root: Node) -> str | None:
    """A covered value that is used outside the pattern (or is a graph output) would have to be kept."""
    escape = escaping_use(root.graph, found.nodes, inside=[root])
    return None if escape is None else f"the intermediate value {escape[1].name!r} is also used outside the pattern"


def analyzer_rule(name: str, op_types: tuple[str, ...], analyze: Analyzer,
                  rewrite: Callable[[Graph, Match, Node], list[Value]]) -> Rule:
    """A Rule whose matching is done by `analyze` at the root; its captures land in the Match."""

    def check(m: Match) -> str | None:
        root = m["root"]
        found = analyze(root)
        reason = found.reason or _escaping(found, root)
        x = found.values.get("x")
        if not reason and root.outputs[0].type != x.type:
            reason = f"constants broadcast the result to {root.outputs[0].type}, not the input's {x.type}"
        if reason:
            return reason
        m.update(found.values)
        m.interior.extend(found.nodes)  # so the rule removes them once the root is replaced
        return None

    return Rule(name, op(op_types, any_inputs=True, name="root", where=lambda n: analyze(n) is not None),
                rewrite, check)


# -- small graph queries -------------------------------------------------------------------------------------------
def _made_by(v: Value | None, *op_types: str) -> Node | None:
    return v.producer if v is not None and v.producer is not None and v.producer.op_type in op_types else None


def _single_use(v: Value) -> bool:
    return len(v.uses) == 1 and v.producer is not None and v not in v.producer.graph.outputs


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= REL_TOL * abs(want)


def _float_reason(v: Value) -> str | None:
    return None if folds_exactly(v.dtype) else f"{v.dtype} is not fused (the fused op would round differently)"


# -- LayerNormalization --------------------------------------------------------------------------------------------
@dataclass
class _Std:
    """sqrt(ReduceMean(d^2) + eps), as found."""

    d: Value
    eps: Value
    exponent: Value | None  # Pow's exponent; None for Mul(d, d)
    var: Node
    nodes: list[Node]


def _std_of(std: Value) -> _Std | None:
    sqrt = _made_by(std, "Sqrt")
    add = _made_by(sqrt.inputs[0], "Add") if sqrt else None
    if add is None:
        return None
    for var_v, eps in (add.inputs, add.inputs[::-1]):
        var = _made_by(var_v, "ReduceMean")
        square = _made_by(var.inputs[0], "Pow", "Mul") if var else None
        if square is None:
            continue
        d, other = square.inputs
        if square.op_type == "Mul" and other is not d:
            continue
        return _Std(d, eps, other if square.op_type == "Pow" else None, var, [sqrt, add, var, square])
    return None


def _layernorm_core(std: _Std, head: list[Node]) -> Found:
    """Check the statistics around d = x - mean(x); `head` are the covered nodes between the root and them."""
    sub = _made_by(std.d, "Sub")
    if sub is None:
        return Found("the normalized value is not x - ReduceMean(x) (an RMS normalization?)")
    x, mean_v = sub.inputs
    mean = _made_by(mean_v, "ReduceMean")
    if mean is None:
        return Found(f"the value subtracted, {mean_v.name!r}, is not a ReduceMean")
    if mean.inputs[0] is not x:
        return Found(f"the mean subtracted is of {mean.inputs[0].name!r}, not of the normalized tensor {x.name!r}")
    if std.exponent is not None and scalar(std.exponent) != 2:
        p = scalar(std.exponent)
        return Found(f"the Pow exponent is {p:g}, not 2" if p is not None else "the Pow exponent is not a scalar "
                     "constant")
    eps = scalar(std.eps)
    if eps is None or std.eps.type.rank > std.var.outputs[0].type.rank:
        return Found(f"epsilon is not a scalar constant (shape {std.eps.shape})")
    rank = x.type.rank
    axes_mean, axes_var = mean.op.reduced_axes(rank), std.var.op.reduced_axes(rank)
    if not (mean.op.keepdims and std.var.op.keepdims):
        return Found("a ReduceMean drops the reduced axes (keepdims=0)")
    if axes_mean != axes_var:
        return Found(f"the mean reduces axes {axes_mean} but the variance axes {axes_var}")
    if not axes_mean or axes_mean != tuple(range(rank - len(axes_mean), rank)):
        return Found(f"ReduceMean over axes {axes_mean} of a rank-{rank} input: LayerNormalization normalizes "
                     "trailing axes")
    reason = _float_reason(x)
    if reason:
        return Found(reason)
    return Found(values={"x": x, "axis": axes_mean[0], "epsilon": eps}, nodes=head + std.nodes + [sub, mean])


def _analyze_div_form(root: Node) -> Found | None:
    head: list[Node] = []
    if root.op_type == "Div":
        d, std_v = root.inputs
    else:
        for d, r in (root.inputs, root.inputs[::-1]):
            recip = _made_by(r, "Reciprocal")
            if recip is not None:
                head, std_v = [recip], recip.inputs[0]
                break
        else:
            return None
    std = _std_of(std_v)
    if std is None or std.d is not d:
        return None
    return _layernorm_core(std, head)


def _analyze_tf_form(root: Node) -> Found | None:
    """x * k + (beta - mean * k), or x * k - mean * k, with k = 1/sqrt(var + eps) [* gamma]."""
    if root.op_type == "Sub":
        orders = [(root.inputs[0], root.inputs[1], None)]
    else:
        orders = []
        for p, q in (root.inputs, root.inputs[::-1]):
            sub = _made_by(q, "Sub")
            if sub is not None and sub.inputs[0].is_constant:
                orders.append((p, sub.inputs[1], sub))
    for p, mean_k, beta_sub in orders:
        scaled_x, scaled_mean = _made_by(p, "Mul"), _made_by(mean_k, "Mul")
        if scaled_x is None or scaled_mean is None:
            continue
        for x, k in (scaled_x.inputs, scaled_x.inputs[::-1]):
            if k not in scaled_mean.inputs:
                continue
            mean_v = scaled_mean.inputs[1] if scaled_mean.inputs[0] is k else scaled_mean.inputs[0]
            gamma, recip, k_nodes = None, _made_by(k, "Reciprocal"), []
            if recip is None and _made_by(k, "Mul"):
                kmul = k.producer
                for r, g in (kmul.inputs, kmul.inputs[::-1]):
                    if _made_by(r, "Reciprocal") and g.is_constant:
                        gamma, recip, k_nodes = g, r.producer, [kmul]
            std = _std_of(recip.inputs[0]) if recip is not None else None
            sub = _made_by(std.d, "Sub") if std is not None else None
            if sub is None or sub.inputs[0] is not x or sub.inputs[1] is not mean_v:
                continue
            head = [scaled_x] + ([beta_sub] if beta_sub else []) + [scaled_mean] + k_nodes + [recip]
            found = _layernorm_core(std, head)
            found.values.update(gamma=gamma, beta=beta_sub.inputs[0] if beta_sub else None)
            return found
    return None


def _analyze_instancenorm(root: Node) -> Found | None:
    x, scale, bias = root.inputs
    if not (scale.is_constant and bias.is_constant and (scale.data == 1).all() and (bias.data == 0).all()):
        return None
    reason = _float_reason(x)
    return Found(reason, {"x": x, "axis": 2, "epsilon": root.op.epsilon})


def _normalized_param(c: Value, x: TensorType, axis: int) -> np.ndarray | str:
    """A Scale or B constant as an array of the normalized shape, if it varies only over the normalized axes."""
    norm = x.shape[axis:]
    try:
        fits = len(c.shape) <= x.rank and np.broadcast_shapes(c.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        return f"constant of shape {c.shape} does not broadcast to the input {x.shape}"
    lead = max(0, len(c.shape) - len(norm))
    if any(d != 1 for d in c.shape[:lead]):
        return f"constant of shape {c.shape} varies over axes that are not normalized (axis {axis} on)"
    return np.ascontiguousarray(np.broadcast_to(c.data.reshape(c.shape[lead:]), norm))


def _add_layernorm(graph: Graph, m: Match, at: Node) -> list[Value]:
    x, axis = m["x"], m["axis"]
    params = {"gamma": m.get("gamma"), "beta": m.get("beta")}
    arrays = {k: _normalized_param(v, x.type, axis) if v is not None else None for k, v in params.items()}
    scale = arrays["gamma"] if arrays["gamma"] is not None else np.ones(x.shape[axis:], x.dtype.np_dtype)
    inputs = [x, graph.add_constant(f"{at.name}_scale", scale)]
    if arrays["beta"] is not None:
        inputs.append(graph.add_constant(f"{at.name}_bias", arrays["beta"]))
    ln = LayerNormalization(axis=axis, epsilon=m["epsilon"], stash_type=_STASH[x.dtype])
    return graph.add_node(ln, inputs, name=at.name, before=at).outputs


def _check_tf_params(analyze: Analyzer) -> Analyzer:
    """The TF form also carries gamma and beta: they must vary only over the normalized axes."""

    def checked(root: Node) -> Found | None:
        found = analyze(root)
        if found is None or found.reason:
            return found
        for name in ("gamma", "beta"):
            c = found.values.get(name)
            arr = _normalized_param(c, found.values["x"].type, found.values["axis"]) if c is not None else None
            if isinstance(arr, str):
                return Found(f"{name}: {arr}")
        return found

    return checked


def _plain_layernorm(node: Node) -> bool:
    return node.op.outputs == 1


def _check_ln_param(m: Match) -> str | None:
    ln = m["ln"]
    reason = _float_reason(m["x"])
    if reason:
        return reason
    axis = ln.op.axis % m["x"].type.rank
    for name in ("c", "scale"):  # an imported LayerNormalization's own Scale may broadcast over other axes
        arr = _normalized_param(m[name], m["x"].type, axis)
        if isinstance(arr, str):
            return arr
    return None


def _rewrite_ln_param(graph: Graph, m: Match, at: Node) -> list[Value]:
    ln, x = m["ln"], m["x"]
    axis = ln.op.axis % x.type.rank
    c = _normalized_param(m["c"], x.type, axis).astype(np.float64)
    scale = _normalized_param(m["scale"], x.type, axis)
    if at.op_type == "Mul":
        inputs = [x, graph.add_constant(f"{at.name}_scale", (scale.astype(np.float64) * c).astype(scale.dtype))]
    else:
        inputs = [x, m["scale"], graph.add_constant(f"{at.name}_bias", c.astype(scale.dtype))]
    return graph.add_node(ln.op, inputs, name=ln.name, before=at).outputs


_LN = op("LayerNormalization", val("x"), const("scale"), name="ln", where=_plain_layernorm)

LAYERNORM_RULES = [
    analyzer_rule("layernorm", ("Div", "Mul"), _analyze_div_form, _add_layernorm),
    analyzer_rule("layernorm_tf", ("Add", "Sub"), _check_tf_params(_analyze_tf_form), _add_layernorm),
    analyzer_rule("layernorm_from_instancenorm", ("InstanceNormalization",), _analyze_instancenorm, _add_layernorm),
    Rule("layernorm_scale", op("Mul", _LN, const("c"), commutative=True), _rewrite_ln_param, _check_ln_param),
    Rule("layernorm_bias", op("Add", _LN, const("c"), commutative=True), _rewrite_ln_param, _check_ln_param),
]


# -- Gelu ----------------------------------------------------------------------------------------------------------
def _product(root: Node) -> tuple[float, list[Value], list[Node]] | None:
    """`root` (a Mul, or a Div by a scalar constant) as coefficient * product of factors, flattening single-use
    Mul and Div-by-constant nodes below it; the nodes flattened besides the root are returned too."""
    coef, factors, nodes = np.float64(1.0), [], []  # numpy: a division by a zero constant gives inf, not an error

    def expand(node: Node) -> None:
        nonlocal coef
        a, b = node.inputs
        if node.op_type == "Div":
            coef /= scalar(b)
            visit(a)
        else:
            visit(a)
            visit(b)

    def visit(v: Value) -> None:
        nonlocal coef
        c = scalar(v)
        p = _made_by(v, "Mul", "Div")
        if c is not None:
            coef *= c
        elif p is not None and _single_use(v) and (p.op_type == "Mul" or scalar(p.inputs[1]) is not None):
            nodes.append(p)
            expand(p)
        else:
            factors.append(v)

    if root.op_type == "Div" and scalar(root.inputs[1]) is None:
        return None
    with np.errstate(all="ignore"):
        expand(root)
    return float(coef), factors, nodes


Poly = dict[int, float]  # degree -> coefficient


def _poly(v: Value, x: Value, nodes: list[Node]) -> Poly | None:
    """`v` as a polynomial in x, through single-use Add, Sub, Mul, Neg, Div by a constant and Pow by a small integer;
    None if it is not one."""
    if v is x:
        return {1: 1.0}
    c = scalar(v)
    if c is not None:
        return {0: c}
    p = _made_by(v, "Add", "Sub", "Mul", "Div", "Neg", "Pow")
    if p is None or not _single_use(v):
        return None
    nodes.append(p)
    if p.op_type == "Pow" or p.op_type == "Div":
        n = scalar(p.inputs[1])
        ok = n is not None and (p.op_type == "Div" and n != 0 or p.op_type == "Pow" and n in (1, 2, 3))
        if not ok:
            return None
        base = _poly(p.inputs[0], x, nodes)
        if base is None:
            return None
        if p.op_type == "Div":
            return {k: a / n for k, a in base.items()}
        out = {0: 1.0}
        for _ in range(int(n)):
            out = _times(out, base)
        return out
    parts = [_poly(u, x, nodes) for u in p.inputs]
    if any(q is None for q in parts):
        return None
    if p.op_type == "Neg":
        return {k: -a for k, a in parts[0].items()}
    if p.op_type == "Mul":
        return _times(*parts)
    sign = -1.0 if p.op_type == "Sub" else 1.0
    out = dict(parts[0])
    for k, a in parts[1].items():
        out[k] = out.get(k, 0.0) + sign * a
    return out


def _times(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for i, u in a.items():
        for j, w in b.items():
            out[i + j] = out.get(i + j, 0.0) + u * w
    return out


@dataclass
class _GeluShape:
    kind: str  # "Erf" or "Tanh"
    x: Value
    coef: float  # the outer constant factor (0.5)
    one: float  # the constant added to erf/tanh (1)
    poly: Poly  # the erf/tanh argument as a polynomial in x
    nodes: list[Node]


def _gelu_shape(root: Node) -> _GeluShape | None:
    """coef * x * (one + f(poly(x))) with f = erf or tanh, in any arrangement of the product."""
    prod = _product(root)
    if prod is None or len(prod[1]) != 2:
        return None
    coef, factors, nodes = prod
    for s, x in (factors, factors[::-1]):
        add = _made_by(s, "Add")  # (other uses of it and of the erf are refused with a reason, by analyzer_rule)
        if add is None:
            continue
        for f_v, one in (add.inputs, add.inputs[::-1]):
            f = _made_by(f_v, "Erf", "Tanh")
            if f is None or scalar(one) is None:
                continue
            arg_nodes: list[Node] = []
            poly = _poly(f.inputs[0], x, arg_nodes)
            if poly is not None:
                return _GeluShape(f.op_type, x, coef, scalar(one), poly, nodes + [add, f] + arg_nodes)
    return None


SQRT_HALF = 1 / math.sqrt(2)
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
TANH_CUBIC = 0.044715


def _gelu_reason(shape: _GeluShape) -> str | None:
    name = shape.kind.lower()
    terms = {k: a for k, a in shape.poly.items() if a != 0}
    if not _close(shape.coef, 0.5):
        return f"the outer factor is {shape.coef:.8g}, not 0.5"
    if not _close(shape.one, 1.0):
        return f"the constant added to {name} is {shape.one:.8g}, not 1"
    if shape.kind == "Erf":
        if set(terms) != {1}:
            return "the erf argument is not a multiple of x"
        if not _close(terms[1], SQRT_HALF):
            return f"the erf argument is x * {terms[1]:.8g}, not x / sqrt(2) = x * {SQRT_HALF:.8g}"
    else:
        if set(terms) != {1, 3}:
            return "the tanh argument is not of the form a * (x + b * x^3)"
        if not _close(terms[1], SQRT_2_OVER_PI):
            return f"the tanh argument scales x by {terms[1]:.8g}, not sqrt(2 / pi) = {SQRT_2_OVER_PI:.8g}"
        if not _close(terms[3] / terms[1], TANH_CUBIC):
            return f"the cubic coefficient is {terms[3] / terms[1]:.8g}, not {TANH_CUBIC}"
    return _float_reason(shape.x)


def _gelu_analyzer(kind: str) -> Analyzer:
    def analyze(root: Node) -> Found | None:
        shape = _gelu_shape(root)
        if shape is None or shape.kind != kind:
            return None
        # In a longer product (x * S) * 0.5, only the outermost node is the root: the inner one defers to it.
        out = root.outputs[0]
        user = out.users[0] if _single_use(out) else None
        in_product = user is not None and (user.op_type == "Mul" or user.op_type == "Div" and user.inputs[0] is out)
        if in_product and _gelu_shape(user) is not None:
            return None
        return Found(_gelu_reason(shape), {"x": shape.x}, shape.nodes)

    return analyze


def _add_gelu(approximate: str):
    def rewrite(graph: Graph, m: Match, at: Node) -> list[Value]:
        return graph.add_node(Gelu(approximate=approximate), [m["x"]], name=at.name, before=at).outputs

    return rewrite


GELU_RULES = [
    analyzer_rule("gelu_erf", ("Mul", "Div"), _gelu_analyzer("Erf"), _add_gelu("none")),
    analyzer_rule("gelu_tanh", ("Mul", "Div"), _gelu_analyzer("Tanh"), _add_gelu("tanh")),
]

register_pass(lambda: RewritePass("fuse-layernorm", LAYERNORM_RULES))
register_pass(lambda: RewritePass("fuse-gelu", GELU_RULES))
