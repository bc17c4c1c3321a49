"""Layer contexts of the elementwise, data-movement, reduction and standalone-activation kernels, mixed into
layers.LayerBuilder (which dispatches on `_<op_type lower case>`). Kernels: templates/hls/kernels/ag_elementwise.h
and ag_reduce.h.

Standalone activations that are exact or nearly so in fixed point (Clip, LeakyRelu, PRelu, HardSigmoid,
HardSwish, Abs, Neg) and the extrema (Max, Min, ReduceMax, ReduceMin) compute what their ops' `compute_fixed`
computes, every constant and intermediate type decided here. A comparison never mixes signedness (the Xilinx
headers get it wrong): operands are first converted to a common type that is signed when either is, and a kernel
that tests x < 0 is only used for signed x (for unsigned x the op is a copy).

Data movement (Transpose, Slice, Gather with constant indices, Expand, Tile, Split, DepthToSpace, SpaceToDepth) is
one kernel: the generator runs the op itself on the element numbers 0..n-1, which gives the source element of every
output element; the kernel copies through that constant table, which synthesis turns into wiring. So the HLS layout
of each of these ops is the interpreter's by construction, not a second implementation of it.
"""

from __future__ import annotations

import math

import numpy as np

from accelgen.backends.hls.cpp import exact_literals, exact_type
from accelgen.errors import OptionError, QuantizationError
from accelgen.ir.fixed import quantize_raw
from accelgen.ir.ops.activations import _Tabled
from accelgen.ir.ops.fixed_math import (
    FixedConstant,
    Rescale,
    add_type,
    product_type,
    sum_type,
)
from accelgen.ir.types import FixedType

BINARY_OPS = {"Add": "ag::add_op", "Sub": "ag::sub_op", "Mul": "ag::mul_op"}
GATHER_OPS = ("Transpose", "Slice", "Gather", "Expand", "Tile", "Split", "DepthToSpace", "SpaceToDepth")
TABLE_OPS = ("Sigmoid", "Tanh")
UNARY_OPS = ("Clip", "LeakyRelu", "PRelu", "HardSigmoid", "HardSwish", "Abs", "Neg")
EXTREMA = {"Max": "ag::max_op", "Min": "ag::min_op"}
COMPARISONS = {"Equal": 0, "Less": 1, "LessOrEqual": 2, "Greater": 3, "GreaterOrEqual": 4}  # ag::compare_op's K
REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool")
ELEMENTWISE_OPS = (*BINARY_OPS, *GATHER_OPS, *TABLE_OPS, *UNARY_OPS, *EXTREMA, *COMPARISONS, *REDUCTIONS,
                   *GLOBAL_POOLS, "Sum", "Where", "Concat", "BatchNormalization")


def _count(dims) -> int:
    return int(np.prod(dims, dtype=np.int64))


def common_type(types, signed: bool | None = None) -> FixedType:
    """The narrowest exact type holding every value of each of `types` (signed when any is, or when asked)."""
    signed = any(t.signed for t in types) if signed is None else signed
    frac = max(t.fractional for t in types)
    integer = max(t.integer + (signed and not t.signed) for t in types)
    return exact_type(integer + frac, integer, signed)


def clip_config(x: FixedType, y: FixedType, lo: float, hi: float) -> list[tuple[str, str, object]]:
    """The integer CONFIG members of ag::clip_activation (its type clip_t comes separately: `clip_type`) for the
    exact x clamped to [lo, hi] and rounded to y. x < lo exactly when x < `below` (lo moved up onto x's grid) and
    x > hi when x > `above` (hi moved down); both are kept within one lsb of x's range, so an unreachable bound
    never compares and clip_t stays narrow. Clamped values are min(lo, hi) and hi rounded to y as the
    interpreter rounds them (Clip gives hi everywhere when lo > hi)."""
    c = clip_type(x, y)
    f = x.fractional
    scale = 2.0 ** f  # exact; a bound beyond float64's range becomes inf, which the clamps absorb

    def raw(v: float) -> float:  # the bound in lsbs of x, within one lsb of x's range (finite, no wide types)
        return min(max(v * scale, x.raw_min - 1), x.raw_max + 1)

    below = min(max(math.ceil(raw(lo)), x.raw_min), x.raw_max + 1)
    above = max(min(math.floor(raw(hi)), x.raw_max), x.raw_min - 1)
    shift = c.fractional - f
    clamped = [int(quantize_raw(y, v)[0]) << (c.fractional - y.fractional) for v in (min(lo, hi), hi)]
    return [("int", "clip_width", c.width), ("long long", "clip_below", below << shift),
            ("long long", "clip_above", above << shift), ("long long", "clip_lo", clamped[0]),
            ("long long", "clip_hi", clamped[1])]


def clip_type(x: FixedType, y: FixedType) -> FixedType:
    """Signed; holds x, one lsb of x beyond either end of its range, and every value of y."""
    beyond = exact_type(x.width + 1 + (not x.signed), x.integer + 1 + (not x.signed), True)
    return common_type([beyond, y], signed=True)


def clip_bounds(op) -> tuple[float, float]:
    """The bounds accelgen's Clip applies to fixed-point values (held in float64): an absent one is float64's
    largest finite value, which no fixed-point value passes."""
    big = float(np.finfo(np.float64).max)
    return (-big if op.min is None else float(op.min)), (big if op.max is None else float(op.max))


def index_ctype(n: int) -> str:
    """The narrowest unsigned C type that numbers `n` elements."""
    return "unsigned short" if n <= 1 << 16 else "unsigned"


def reduction_layout(node, op) -> tuple[int, int, int]:
    """(outer, r, inner) of a reduction over a contiguous block of axes (size-1 axes ignored); a global pool
    reduces the spatial axes of [N, C, *spatial]."""
    shape = tuple(node.inputs[0].shape)
    if node.op_type in GLOBAL_POOLS:
        return _count(shape[:2]), _count(shape[2:]), 1
    axes = set(op.reduced_axes(len(shape)))
    real = [(d, i in axes) for i, d in enumerate(shape) if d != 1]
    flags = [reduced for _, reduced in real]
    if True not in flags:
        return _count(shape), 1, 1
    first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
    if not all(flags[first:last + 1]):
        raise OptionError(f"{node.name}: {node.op_type} over the non-adjacent axes {sorted(axes)} of {shape} has "
                          "no HLS kernel in this version")
    dims = [d for d, _ in real]
    return _count(dims[:first]), _count(dims[first:last + 1]), _count(dims[last + 1:])


class ElementwiseKernels:
    """Methods of LayerBuilder. Uses LayerBuilder's _typedef, _x, _y, _const, _table, fixed_type."""

    def _operand(self, layer, node, slot: int) -> str:
        """The C name of input `slot`: its tensor, or for a constant an array of this layer (named per layer, so a
        constant feeding two nodes is never defined twice)."""
        v = node.inputs[slot]
        t = self.fixed_type(v)
        if not v.is_constant:
            return self._x(node, slot)
        name = f"{layer.cname}_in{slot}"
        self._const(layer, name, self._typedef(layer, f"in{slot}", t),
                    exact_literals(v.data, t, f"{node.name} input {slot}"))
        return name

    # -- Add, Sub, Mul, PRelu, Max, Min ---------------------------------------------------------------------------
    def _binary(self, layer, node, functor: str) -> None:
        layer.call, layer.kernel = self._binary_call(layer, node, functor, (0, 1), self._y(node))
        layer.multipliers = node.outputs[0].type.numel if node.op_type in ("Mul", "PRelu") else 0

    def _binary_call(self, layer, node, functor: str, slots, y: str, operands=None, tag: str = "") -> tuple[str, str]:
        """(call, description) of `functor` on inputs `slots` into array `y` of the output's shape; `operands`
        overrides an input's C name (a Max/Min chain's partial result, of the output's shape); `tag` tells one
        call's index tables from another's."""
        out = node.outputs[0]
        self.fixed_type(out)
        operands = operands or {}
        values = [node.inputs[slot] for slot in slots]
        shapes = [tuple(out.shape) if slot in operands else tuple(v.shape) for slot, v in zip(slots, values)]
        names = [operands.get(slot) or self._operand(layer, node, slot) for slot in slots]
        n = out.type.numel
        if shapes[0] == shapes[1] == tuple(out.shape):
            return (f"ag::elementwise<{functor}, {n}>({names[0]}, {names[1]}, {y});",
                    f"{node.op_type.lower()}, {n} elements")
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
        index = index_ctype(max(sizes))
        maps = []
        for slot, shape, size in zip(slots, shapes, sizes):
            source = np.broadcast_to(np.arange(size, dtype=np.int64).reshape(shape), out.shape).reshape(-1)
            self._const(layer, f"{layer.cname}{tag}_index{slot}", index, [str(int(i)) for i in source])
            maps.append(f"{layer.cname}{tag}_index{slot}")
        call = (f"ag::elementwise_broadcast<{functor}, {n}, {sizes[0]}, {sizes[1]}>({names[0]}, {names[1]}, {y}, "
                f"{maps[0]}, {maps[1]});")
        return call, f"{node.op_type.lower()} broadcasting {list(shapes[0])} and {list(shapes[1])}"

    def _add(self, layer, node, q, op, choice) -> None:
        self._binary(layer, node, BINARY_OPS["Add"])

    def _sub(self, layer, node, q, op, choice) -> None:
        self._binary(layer, node, BINARY_OPS["Sub"])

    def _mul(self, layer, node, q, op, choice) -> None:
        self._binary(layer, node, BINARY_OPS["Mul"])

    def _prelu(self, layer, node, q, op, choice) -> None:
        if not self.fixed_type(node.inputs[0]).signed:  # never below zero
            return self._unary_copy(layer, node, "prelu of unsigned x: a copy")
        self.fixed_type(node.inputs[1])
        self._binary(layer, node, "ag::prelu_op")
        layer.kernel = layer.kernel.replace("prelu", "prelu (x * slope below zero)", 1)

    def _extremum(self, layer, node, q, op, choice) -> None:
        """Max / Min: compared exactly in the inputs' common type, which also holds the partial results."""
        common = common_type([self.fixed_type(v) for v in node.inputs])
        self._fold(layer, node, lambda cmp_t: f"{EXTREMA[node.op_type]}<{cmp_t}>", common)

    def _sum(self, layer, node, q, op, choice) -> None:
        """Sum: partial sums exact (the sum type of the inputs so far), the last add the node's one rounding."""
        types = [self.fixed_type(v) for v in node.inputs]
        total = types[0]
        for t in types[1:-1]:
            total = add_type(total, t)
        self._fold(layer, node, lambda _: BINARY_OPS["Add"], total)

    def _fold(self, layer, node, functor, partial_type: FixedType) -> None:
        """A variadic op of one or more inputs (numpy broadcasting), folded pairwise as the interpreter folds it:
        one input is a copy (the output's rounding); partial results of three or more inputs are kept in
        `partial_type` (typedef <layer>_part_t), exactly. `functor(part_t name)` gives the pairwise functor."""
        self.fixed_type(node.outputs[0])
        if len(node.inputs) == 1:
            return self._unary_copy(layer, node, f"{node.op_type.lower()} of one input: a copy")
        part_t = self._typedef(layer, "part", partial_type)
        calls, partial, n = [], None, node.outputs[0].type.numel
        for slot in range(1, len(node.inputs)):
            last = slot == len(node.inputs) - 1
            target = self._y(node) if last else f"{layer.cname}_part{slot}"
            if not last:  # registers, as the unrolled kernels read every element at once
                calls += [f"{part_t} {target}[{n}];", f"#pragma HLS ARRAY_PARTITION variable = {target} complete"]
            operands = {} if partial is None else {slot - 1: partial}
            call, kernel = self._binary_call(layer, node, functor(part_t), (slot - 1, slot), target, operands,
                                             tag="" if len(node.inputs) == 2 else f"_step{slot}")
            calls.append(call)
            partial = target
        layer.call = "\n    ".join(calls)
        layer.kernel = kernel if len(node.inputs) == 2 else f"{node.op_type.lower()} of {len(node.inputs)} inputs"
        if node.op_type in EXTREMA:
            layer.kernel = layer.kernel.replace(node.op_type.lower(), f"{node.op_type.lower()} (comparators)", 1)

    _max = _min = _extremum

    def _compare(self, layer, node, q, op, choice) -> None:
        common = common_type([self.fixed_type(v) for v in node.inputs])
        self._binary(layer, node, f"ag::compare_op<{self._typedef(layer, 'cmp', common)}, "
                                  f"{COMPARISONS[node.op_type]}>")

    _equal = _less = _lessorequal = _greater = _greaterorequal = _compare

    def _where(self, layer, node, q, op, choice) -> None:
        """y = cond ? a : b, each operand through an index table of the output's shape (broadcasting)."""
        out = node.outputs[0]
        self.fixed_type(out)
        if self.fixed_type(node.inputs[0]).width != 1:
            raise OptionError(f"{node.name}: Where needs a boolean condition")
        names, maps, sizes = [], [], []
        index = index_ctype(max(v.type.numel for v in node.inputs))
        for slot, v in enumerate(node.inputs):
            names.append(self._operand(layer, node, slot))
            source = np.broadcast_to(np.arange(v.type.numel, dtype=np.int64).reshape(v.shape), out.shape).reshape(-1)
            self._const(layer, f"{layer.cname}_index{slot}", index, [str(int(i)) for i in source])
            maps.append(f"{layer.cname}_index{slot}")
            sizes.append(str(v.type.numel))
        layer.call = (f"ag::where<{out.type.numel}, {', '.join(sizes)}>({', '.join(names)}, {self._y(node)}, "
                      f"{', '.join(maps)});")
        layer.kernel = f"where, {out.type.numel} selects"

    # -- standalone activations ----------------------------------------------------------------------------------
    def _unary_copy(self, layer, node, kernel: str) -> None:
        layer.call = f"ag::copy<{node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = kernel

    def _clip(self, layer, node, q, op, choice) -> None:
        x, y = self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        layer.config += self.clip_members(layer, x, y, op)
        layer.call = f"ag::clip<{layer.config_name}, {node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        lo, hi = clip_bounds(op)
        layer.kernel = f"clip to [{lo:g}, {hi:g}]"

    def clip_members(self, layer, x: FixedType, y: FixedType, op) -> list:
        """ag::clip_activation's CONFIG members for exact x of type `x` rounded to `y` (standalone or fused)."""
        return [("type", "clip_t", self._typedef(layer, "clip", clip_type(x, y))),
                *clip_config(x, y, *clip_bounds(op))]

    def _rescale_config(self, layer, node, scale: Rescale, name: str) -> str:
        """pre_t and scale_t of a constant scaling (Rescale) left exact, and the constant as a scalar."""
        if scale.out is not None:
            raise QuantizationError(f"{node.name}: {node.op_type} scaling {scale} rounds its product; the HLS "
                                    "kernel expects it exact")
        layer.config += [("type", "pre_t", self._typedef(layer, "pre", scale.pre or scale.x_type)),
                         ("type", "scale_t", self._typedef(layer, "scale", scale.constant.type))]
        layer.scalars.append((f"{layer.cname}_{name}", f"{layer.cname}_scale_t",
                              exact_literals(scale.constant.array, scale.constant.type, f"{node.name} {name}")[0]))
        return f"{layer.cname}_{name}"

    def _leakyrelu(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        if not x.signed:
            return self._unary_copy(layer, node, "leaky relu of unsigned x: a copy")
        slope = self._rescale_config(layer, node, q.param("slope"), "slope")
        n = node.outputs[0].type.numel
        layer.call = f"ag::leaky_relu<{layer.config_name}, {n}>({self._x(node)}, {self._y(node)}, {slope});"
        layer.kernel = f"leaky relu, alpha {q.param('slope').constant}"
        layer.multipliers = n

    def _hard_line(self, layer, node, scale: Rescale, offset, scale_name: str, offset_name: str) -> list[str]:
        """The CONFIG of ag::hard_line: x * q(alpha) + q(beta), exact in clamp_t, clamped to [0, 1]."""
        self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        names = [self._rescale_config(layer, node, scale, scale_name)]
        total = add_type(product_type(scale.pre or scale.x_type, scale.constant.type), offset.type)
        layer.config += [("type", "offset_t", self._typedef(layer, "offset", offset.type)),
                         ("type", "clamp_t", self._typedef(layer, "clamp", common_type(
                             [total, exact_type(2, 2, True)], signed=True)))]
        layer.scalars.append((f"{layer.cname}_{offset_name}", f"{layer.cname}_offset_t",
                              exact_literals(offset.array, offset.type, f"{node.name} {offset_name}")[0]))
        return [*names, f"{layer.cname}_{offset_name}"]

    def _hardsigmoid(self, layer, node, q, op, choice) -> None:
        slope, offset = self._hard_line(layer, node, q.param("slope"), q.param("offset"), "slope", "offset")
        n = node.outputs[0].type.numel
        layer.call = (f"ag::hard_sigmoid<{layer.config_name}, {n}>({self._x(node)}, {self._y(node)}, {slope}, "
                      f"{offset});")
        layer.kernel = f"hard sigmoid, alpha {q.param('slope').constant}, beta {q.param('offset')}"
        layer.multipliers = n

    def _hardswish(self, layer, node, q, op, choice) -> None:
        half = FixedConstant.in_type(0.5, exact_type(1, 0, False))
        sixth, half = self._hard_line(layer, node, q.param("sixth"), half, "sixth", "half")
        layer.config.append(("type", "gate_t", self._typedef(layer, "gate", q.param("gate"))))
        n = node.outputs[0].type.numel
        layer.call = (f"ag::hard_swish<{layer.config_name}, {n}>({self._x(node)}, {self._y(node)}, {sixth}, "
                      f"{half});")
        layer.kernel = f"hard swish, gate {q.param('gate')}"
        layer.multipliers = 2 * n  # x / 6 (a constant) and x * gate

    def _abs(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        if not x.signed:
            return self._unary_copy(layer, node, "abs of unsigned x: a copy")
        layer.call = f"ag::absolute<{node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = "abs"

    def _neg(self, layer, node, q, op, choice) -> None:
        self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        layer.call = f"ag::negate<{node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = "neg"

    # -- data movement -------------------------------------------------------------------------------------------
    def _gather_map(self, layer, node, q, op, choice) -> None:
        x = node.inputs[0]
        self.fixed_type(x)
        extra = []
        for slot, v in enumerate(node.inputs[1:], 1):
            if v is not None and not v.is_constant:
                raise OptionError(f"{node.name}: {node.op_type} with a run-time input {slot} ({v.name!r}) has no HLS "
                                  "kernel; its indices, shape or repeats must be constants")
            extra.append(None if v is None else v.data)
        numbers = np.arange(x.type.numel, dtype=np.int64).reshape(x.shape)
        sources = op.compute([numbers, *extra])
        index = index_ctype(x.type.numel)
        calls = []
        for k, (out, source) in enumerate(zip(node.outputs, sources)):
            self.fixed_type(out)
            source = np.asarray(source).reshape(-1)
            if source.size != out.type.numel:
                raise AssertionError(f"{node.name}: index map of {source.size} elements for output {out.shape}")
            name = f"{layer.cname}_index{k}"
            self._const(layer, name, index, [str(int(i)) for i in source])
            calls.append(f"ag::gather<{x.type.numel}, {out.type.numel}>({self._x(node)}, {self._y(node, k)}, {name});")
        layer.call = "\n    ".join(calls)
        layer.kernel = f"{node.op_type.lower()} (constant index table: wiring)"

    _transpose = _slice = _gather = _expand = _tile = _split = _depthtospace = _spacetodepth = _gather_map

    def _concat(self, layer, node, q, op, choice) -> None:
        out = node.outputs[0]
        self.fixed_type(out)
        shape = tuple(out.shape)
        axis = op.axis % len(shape)
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
        calls, offset = [], 0
        for slot, v in enumerate(node.inputs):
            block = v.shape[axis] * inner
            name = self._operand(layer, node, slot)
            calls.append(f"ag::concat_part<{outer}, {block}, {shape[axis] * inner}, {offset}>({name}, "
                         f"{self._y(node)});")
            offset += block
        layer.call = "\n    ".join(calls)
        layer.kernel = f"concat of {len(node.inputs)} along axis {axis}"

    # -- BatchNormalization ------------------------------------------------------------------------------------
    def _batchnormalization(self, layer, node, q, op, choice) -> None:
        x = node.inputs[0]
        self.fixed_type(x), self.fixed_type(node.outputs[0])
        multiplier, offset = q.param("multiplier"), q.param("offset")
        if multiplier is None or offset is None:
            raise QuantizationError(f"{node.name}: BatchNormalization has no folded multiplier and offset")
        shape = tuple(x.shape)
        channels = int(np.prod(shape[1:] if not op.spatial else shape[1:2], dtype=np.int64))
        inner = 1 if not op.spatial else int(np.prod(shape[2:], dtype=np.int64))
        names = []
        for what, const in (("a", multiplier), ("b", offset)):
            if const.array.size != channels:
                raise QuantizationError(f"{node.name}: {what} has {const.array.size} values for {channels} channels")
            name = f"{layer.cname}_{what}"
            self._const(layer, name, self._typedef(layer, what, const.type),
                        exact_literals(const.array, const.type, f"{node.name} {what}"))
            names.append(name)
        layer.call = (f"ag::scale_shift<{shape[0]}, {channels}, {inner}>({self._x(node)}, {self._y(node)}, "
                      f"{names[0]}, {names[1]});")
        layer.multipliers = channels * inner
        layer.kernel = f"batch norm (scale and shift per channel, {channels} channels)"

    # -- reductions and global pools ---------------------------------------------------------------------------
    def _reduction_config(self, layer, node, op, sum_type: FixedType | None) -> None:
        self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        outer, r, inner = reduction_layout(node, op)
        layer.config += [("unsigned", "outer", outer), ("unsigned", "r", r), ("unsigned", "inner", inner)]
        if sum_type is not None:
            layer.config.append(("type", "sum_t", self._typedef(layer, "sum", sum_type)))
        layer.kernel = f"{node.op_type.lower()} of {r} values, {outer * inner} outputs"

    def _reducesum(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self._reduction_config(layer, node, op, sum_type(x, reduction_layout(node, op)[1]))
        layer.call = f"ag::reduce_sum<{layer.config_name}>({self._x(node)}, {self._y(node)});"

    def _reducemean(self, layer, node, q, op, choice) -> None:
        mean = q.param("mean")
        if not isinstance(mean, Rescale):
            raise QuantizationError(f"{node.name}: {node.op_type} has no 'mean' scaling in its precision params")
        pre = mean.pre or mean.x_type
        self._reduction_config(layer, node, op, mean.x_type)
        inner = reduction_layout(node, op)[2]
        for name, t in (("pre_t", pre), ("scale_t", mean.constant.type),
                        ("mean_t", mean.out or product_type(pre, mean.constant.type))):
            layer.config.append(("type", name, self._typedef(layer, name[:-2], t)))
        layer.scalars.append((f"{layer.cname}_scale", f"{layer.cname}_scale_t",
                              exact_literals(mean.constant.array, mean.constant.type, "1/n")[0]))
        layer.call = f"ag::reduce_mean<{layer.config_name}>({self._x(node)}, {self._y(node)}, {layer.cname}_scale);"
        layer.multipliers = inner  # one product per output element of a row, pipelined over the rows

    _globalaveragepool = _reducemean

    def _reduce_extremum(self, layer, node, q, op, choice) -> None:
        """ReduceMax, ReduceMin, GlobalMaxPool: compared in the input's own type (the output keeps it)."""
        x = self.fixed_type(node.inputs[0])
        self._reduction_config(layer, node, op, None)
        functor = "ag::min_op" if node.op_type == "ReduceMin" else "ag::max_op"
        layer.call = (f"ag::reduce_extremum<{layer.config_name}, {functor}<{self._typedef(layer, 'x', x)}> >("
                      f"{self._x(node)}, {self._y(node)});")

    _reducemax = _reducemin = _globalmaxpool = _reduce_extremum

    # -- standalone table activations ----------------------------------------------------------------------------
    def _table_map(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        table = q.param("table")
        if table is None or type(op).lookup_fixed is not _Tabled.lookup_fixed:
            raise QuantizationError(f"{node.name}: {node.op_type} has no plain lookup table in its precision params")
        struct = self._table(layer, x, table)[len("ag::table_activation<"):-1]
        layer.call = f"ag::table_map<{struct}, {node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = f"{node.op_type.lower()} table {table.size}"

    _sigmoid = _tanh = _table_map
