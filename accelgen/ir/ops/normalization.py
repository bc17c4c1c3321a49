"""Normalization ops (BatchNormalization in inference form, LayerNormalization, InstanceNormalization) and the
softmax family (Softmax, LogSoftmax, Hardmax).

Statistics are computed in float32 for half-precision inputs (onnxruntime's CPU kernels do the same) and with
numpy's pairwise summation over one contiguous row per normalized group, which keeps float32 results within ~1e-6
relative of onnxruntime even over long rows (768+ channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from accelgen.errors import InvalidModelError, QuantizationError, ShapeError
from accelgen.ir.fixed import MAX_FLOAT_WIDTH
from accelgen.ir.ops.base import Op, normalize_axis
from accelgen.ir.ops.dtypes import onnx_dtype
from accelgen.ir.ops.fixed_math import (INTERNAL_ROUNDING, FixedConstant, add_type, fixed_round, product_type,
                                        softmax_difference_type, softmax_fixed, sum_type)
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import FixedType, Overflow, TensorType, from_numpy


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; every other float type computes in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _row_stats(x: np.ndarray, start: int, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, centred values and 1/sqrt(var + eps) over the axes from `start` on (statistics keep those axes as 1).

    Two passes (mean, then the mean of squared deviations) rather than E[x^2] - E[x]^2, which cancels badly when
    the mean is large relative to the spread.
    """
    outer = x.shape[:start]
    n = int(np.prod(x.shape[start:], dtype=np.int64))
    rows = np.ascontiguousarray(x).reshape(outer + (n,))
    mean = rows.sum(axis=-1, keepdims=True) / np.asarray(n, x.dtype)
    diff = rows - mean
    var = (diff * diff).sum(axis=-1, keepdims=True) / np.asarray(n, x.dtype)
    inv_std = np.asarray(1, x.dtype) / np.sqrt(var + np.asarray(eps, x.dtype))
    stat_shape = outer + (1,) * (x.ndim - start)
    return mean.reshape(stat_shape), diff.reshape(x.shape), inv_std.reshape(stat_shape)


def _channel_params(op: str, x: TensorType, params, names: tuple[str, ...], shape: tuple[int, ...]) -> None:
    for name, p in zip(names, params):
        if p.shape != shape:
            raise ShapeError(f"{op}: {name} has shape {p.shape}, expected {shape} for input {x}")


@register
@dataclass(frozen=True)
class BatchNormalization(Op):
    """Inference-form batch norm: y = (x - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1).

    `spatial` (opsets 7-8) = 0 means the statistics and affine parameters are per activation (shape C x D1 x ...)
    instead of per channel. Training mode (training_mode=1 or the extra statistics outputs) is rejected.
    """

    # momentum only updates running statistics in training; is_test/consumed_inputs are pre-opset-7 bookkeeping.
    ignored_attrs = frozenset({"momentum", "is_test", "consumed_inputs"})

    epsilon: float = 1e-5
    spatial: int = 1
    training_mode: int = 0

    def __post_init__(self):
        if self.training_mode != 0:
            raise InvalidModelError("BatchNormalization with training_mode=1 is not supported (inference only); "
                                    "export the model in eval mode")
        if self.spatial not in (0, 1):
            raise InvalidModelError(f"BatchNormalization: spatial must be 0 or 1, got {self.spatial}")

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        if opset >= 9 and "spatial" in attrs:
            raise InvalidModelError(f"BatchNormalization: attribute 'spatial' does not exist in opset {opset}")
        op = cls.from_attrs(attrs)
        if n_outputs > 1:
            raise InvalidModelError(f"BatchNormalization has {n_outputs} outputs; only the inference form (one "
                                    "output) is supported; export the model in eval mode")
        return op

    def infer(self, inputs):
        self.arity(inputs, 5)
        x = inputs[0]
        if x.rank < 2:
            raise ShapeError(f"BatchNormalization: input {x} must have rank >= 2 (N x C x ...)")
        want = (x.shape[1],) if self.spatial else x.shape[1:]
        _channel_params("BatchNormalization", x, inputs[1:], ("scale", "B", "mean", "var"), want)
        return [x]

    def compute(self, inputs):
        x = inputs[0]
        work = _work_dtype(x.dtype)
        pshape = (1, -1) + (1,) * (x.ndim - 2) if self.spatial else (1,) + x.shape[1:]
        scale, bias, mean, var = (p.astype(work).reshape(pshape) for p in inputs[1:])
        inv = scale / np.sqrt(var + np.asarray(self.epsilon, work))
        y = (x.astype(work) - mean) * inv + bias
        return [y.astype(x.dtype)]

    # Fixed point (a batch norm the passes could not fold into a Dense or Conv): y = x * a + b per channel, with
    # a = scale / sqrt(var + epsilon) and b = B - mean * a folded offline in float64 and rounded to weight types
    # ("multiplier", "offset"); the product and sum are exact and the node rounds once.
    def fixed_precision(self, node, ctx) -> FixedPlan:
        params = node.inputs[1:]
        if not all(v.is_constant for v in params):
            raise QuantizationError(f"{node.name}: BatchNormalization needs constant scale, bias, mean and variance")
        scale, bias, mean, var = (np.asarray(v.data, np.float64) for v in params)
        a = scale / np.sqrt(var + self.epsilon)
        b = bias - mean * a
        shape = (-1,) + (1,) * (len(node.inputs[0].shape) - 2) if self.spatial else params[0].shape
        folded = [FixedConstant.in_type(v.reshape(shape), ctx.weight_type(v, node.name, node.op_type))
                  for v in (a, b)]
        constants = {i: ctx.weight_type(v.data, node.name, node.op_type) for i, v in enumerate(params, 1)}
        return FixedPlan(ctx.output_types(node), [("multiplier", folded[0]), ("offset", folded[1])], constants)

    def compute_fixed(self, inputs, q):
        return [inputs[0] * q.param("multiplier").array + q.param("offset").array]


@register
@dataclass(frozen=True)
class InstanceNormalization(Op):
    """Per-(sample, channel) normalization over the spatial axes, then a per-channel scale and bias."""

    epsilon: float = 1e-5

    def infer(self, inputs):
        self.arity(inputs, 3)
        x = inputs[0]
        if x.rank < 3:
            raise ShapeError(f"InstanceNormalization: input {x} must have rank >= 3 (N x C x D1 x ...)")
        _channel_params("InstanceNormalization", x, inputs[1:], ("scale", "B"), (x.shape[1],))
        return [x]

    def compute(self, inputs):
        x, scale, bias = inputs
        work = _work_dtype(x.dtype)
        _, diff, inv_std = _row_stats(x.astype(work), 2, self.epsilon)
        pshape = (1, -1) + (1,) * (x.ndim - 2)
        y = diff * inv_std * scale.astype(work).reshape(pshape) + bias.astype(work).reshape(pshape)
        return [y.astype(x.dtype)]


@register
@dataclass(frozen=True)
class LayerNormalization(Op):
    """Normalization over the axes from `axis` on (opset 17). Up to three outputs: Y, Mean and InvStdDev; the
    statistics have X's shape with the normalized axes set to 1, in the `stash_type` precision.

    `outputs` is not an ONNX attribute: it records how many outputs the node asked for.
    """

    axis: int = -1
    epsilon: float = 1e-5
    stash_type: int = 1
    outputs: int = 1

    def __post_init__(self):
        if not 1 <= self.outputs <= 3:
            raise InvalidModelError(f"LayerNormalization has 1 to 3 outputs, got {self.outputs}")
        try:
            stash = onnx_dtype(self.stash_type, 'LayerNormalization stash_type').np_dtype
        except (KeyError, TypeError, ValueError):
            stash = None
        if stash is None or stash.kind != "f" and stash.name != "bfloat16":
            raise InvalidModelError(f"LayerNormalization: stash_type {self.stash_type} is not a float type")

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        if "outputs" in attrs:
            raise InvalidModelError("LayerNormalization: unsupported attribute(s) outputs")
        return cls.from_attrs({**attrs, "outputs": n_outputs})

    @property
    def stash_dtype(self) -> np.dtype:
        return onnx_dtype(self.stash_type, 'LayerNormalization stash_type').np_dtype

    def infer(self, inputs):
        self.arity(inputs, 2, 3)
        x = inputs[0]
        axis = normalize_axis(self.axis, x.rank, "LayerNormalization")
        for name, p in zip(("Scale", "B"), inputs[1:]):
            if p is None:
                continue
            try:
                fits = np.broadcast_shapes(p.shape, x.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(f"LayerNormalization: {name} {p} does not broadcast to input {x}")
        stat = TensorType(x.shape[:axis] + (1,) * (x.rank - axis), from_numpy(self.stash_dtype))
        return [x, stat, stat][: self.outputs]

    def compute(self, inputs):
        x, scale = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        axis = normalize_axis(self.axis, x.ndim, "LayerNormalization")
        stash = self.stash_dtype
        mean, diff, inv_std = _row_stats(x.astype(_work_dtype(stash)), axis, self.epsilon)
        # As the ONNX function body: normalize in the stash precision, then scale and shift in X's own type
        # (float32 for half types, whose arithmetic numpy would otherwise round at every step).
        affine = _work_dtype(x.dtype)
        y = (diff * inv_std).astype(x.dtype).astype(affine) * scale.astype(affine)
        if bias is not None:
            y = y + bias.astype(affine)
        return [y.astype(x.dtype), mean.astype(stash), inv_std.astype(stash)][: self.outputs]

    # -- fixed point ------------------------------------------------------------------------------------------------
    # Per row of N elements: s = sum(x) exactly; mean = s * q(1/N) rounded to "mean" (x's integer bits, two more
    # fractional ones: the mean lies in x's range); d = x - mean exactly; var = sum(d * d) * q(1/N) rounded to
    # "var"; v = max(var + q(epsilon) ("var_epsilon"), lsb of var); inv_std = rsqrt(v) from the normalised table
    # (entry * 2**-k); norm = d * inv_std rounded to "norm"; y = norm * gamma + beta exactly, rounded to the output.
    # An epsilon below half an lsb of "var" rounds to 0: "var" resolves the smallest calibrated variance to
    # index bits + 4, so such an epsilon is below the table's own resolution there.
    # |norm| <= sqrt(N - 1) (one outlier in a row of equal values), so "norm" is given that range (and the table's
    # error) rather than a calibrated one: it never saturates, and a large output saturates where it is counted.
    def calibration_probes(self, inputs):
        x = np.asarray(inputs[0], np.float64)
        axis = normalize_axis(self.axis, x.ndim, "LayerNormalization")
        _, diff, _ = _row_stats(x, axis, self.epsilon)
        var = (diff * diff).mean(axis=tuple(range(axis, x.ndim)), keepdims=True)
        return {"var": var}

    def fixed_precision(self, node, ctx) -> FixedPlan:
        if self.outputs != 1:
            raise QuantizationError(f"{node.name}: LayerNormalization's Mean and InvStdDev outputs have no "
                                    "fixed-point kernel (only Y)")
        x = node.inputs[0].dtype
        axis = normalize_axis(self.axis, len(node.inputs[0].shape), "LayerNormalization")
        n = int(np.prod(node.inputs[0].shape[axis:], dtype=np.int64))
        mean_t = FixedType(x.width + 2, x.integer, x.signed, INTERNAL_ROUNDING, Overflow.SAT)
        mean = ctx.rescale(sum_type(x, n), 1.0 / n, mean_t)
        d = add_type(x, mean_t)
        squares = sum_type(product_type(d, d), n)
        if squares.width > MAX_FLOAT_WIDTH:
            raise QuantizationError(f"{node.name}: the exact sum of squares of {d} over {n} values needs "
                                    f"{squares.width} bits (> {MAX_FLOAT_WIDTH}); use a narrower input type")
        var = ctx.rescale(squares, 1.0 / n)
        var = replace(var, out=self._var_type(var, ctx.range_of(f"{node.name}/var")[0], ctx.index_bits()))
        constants = {i: ctx.weight_type(v.data, node.name, node.op_type) for i, v in enumerate(node.inputs)
                     if i > 0 and v is not None and v.is_constant}
        params = [("mean", mean), ("var", var), ("var_epsilon", FixedConstant.in_type(self.epsilon, var.out)),
                  ("rsqrt", ctx.normalized_table("rsqrt")), ("norm", ctx.bounded_type(node, 1.01 * math.sqrt(n)))]
        return FixedPlan(ctx.output_types(node), params, constants)

    @staticmethod
    def _var_type(var, smallest: float, index_bits: int) -> FixedType:
        """The variance keeps every integer bit the exact product could need (it cannot overflow) and enough
        fractional bits for the smallest calibrated variance to index the rsqrt table with a few bits to spare."""
        exact = product_type(var.pre or var.x_type, var.constant.type)
        integer = exact.integer - exact.signed
        want = (math.ceil(-math.log2(smallest)) if smallest > 0 else exact.fractional) + index_bits + 4
        frac = max(min(want, exact.fractional, MAX_FLOAT_WIDTH - 1 - integer), 1 - integer)
        return FixedType(integer + frac, integer, False, INTERNAL_ROUNDING, Overflow.SAT)

    def compute_fixed(self, inputs, q):
        x, gamma = inputs[0], inputs[1]
        beta = inputs[2] if len(inputs) > 2 else None
        axis = normalize_axis(self.axis, x.ndim, "LayerNormalization")
        rows = np.asarray(x, np.float64).reshape(x.shape[:axis] + (-1,))
        mean = q.param("mean").apply(rows.sum(axis=-1, keepdims=True), q, "mean")
        d = rows - mean
        var = q.param("var")
        v = var.apply((d * d).sum(axis=-1, keepdims=True), q, "var") + q.param("var_epsilon").value
        inv_std = q.param("rsqrt").evaluate(np.maximum(v, var.out.lsb))  # a constant row has var 0: its d is 0
        norm = fixed_round(q.param("norm"), d * inv_std, q, "norm").reshape(x.shape)
        y = norm * gamma
        return [y if beta is None else y + beta]


@dataclass(frozen=True)
class _SoftmaxLike(Op):
    """Softmax-style ops along `axis`. Before opset 13 ONNX coerced the input to 2-D at `axis` (default 1) and
    worked on whole rows of the flattened trailing axes; `coerce_2d` records that legacy meaning (set by
    from_onnx, never an ONNX attribute). From opset 13 the op works along the single axis (default -1)."""

    axis: int = -1
    coerce_2d: bool = False

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        if "coerce_2d" in attrs:
            raise InvalidModelError(f"{cls.op_type}: unsupported attribute(s) coerce_2d")
        if opset < 13:
            return cls.from_attrs({"axis": 1, **attrs, "coerce_2d": True})
        return cls.from_attrs(attrs)

    def _axis(self, rank: int) -> int:
        if self.coerce_2d and self.axis == rank:  # legacy: coercing at the rank gives rows of length 1
            return rank
        return normalize_axis(self.axis, rank, self.op_type)

    def infer(self, inputs):
        self.arity(inputs, 1)
        self._axis(inputs[0].rank)
        return [inputs[0]]

    def compute(self, inputs):
        x = inputs[0]
        work = x.astype(_work_dtype(x.dtype))
        axis = self._axis(x.ndim)
        if self.coerce_2d:
            rows = np.ascontiguousarray(work).reshape(x.shape[:axis] + (int(np.prod(x.shape[axis:])),))
            out = self.along(rows, -1).reshape(x.shape)
        else:
            out = self.along(work, axis)
        return [out.astype(x.dtype)]

    def along(self, x: np.ndarray, axis: int) -> np.ndarray:
        raise NotImplementedError


def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """x minus its max along `axis`, so exp cannot overflow (an all -inf row stays -inf rather than NaN)."""
    m = np.max(x, axis=axis, keepdims=True) if x.shape[axis] else np.zeros_like(x, shape=())
    return x - np.where(np.isfinite(m), m, np.zeros_like(m))


@register
@dataclass(frozen=True)
class Softmax(_SoftmaxLike):
    """exp(x - max(x)) / sum along `axis`.

    Fixed point (as the HLS kernel computes it, `fixed_math.softmax_fixed`): d = x - max(x), saturated where
    exp(d) is 0 anyway; e = exp(d) as 2**(d log2 e) from a table over one octave, rounded to the table entry type;
    s = sum(e) exactly; y = e * reciprocal(s) from the leading-one normalised table, rounded to the output type.
    Neither table depends on a calibrated range; both keep a relative error of about 2**-(index bits + 1)."""

    def along(self, x, axis):
        e = np.exp(_shifted(x, axis))
        return e / e.sum(axis=axis, keepdims=True)

    def fixed_precision(self, node, ctx):
        if self.coerce_2d:
            raise QuantizationError(f"{node.name}: legacy (opset < 13) 2-D Softmax has no fixed-point kernel")
        x = node.inputs[0].dtype
        entry = ctx.table_entry_type()
        exp = ctx.exp_function(softmax_difference_type(x, entry), entry)
        return FixedPlan(ctx.output_types(node), [("exp", exp), ("reciprocal", ctx.normalized_table("reciprocal"))])

    def compute_fixed(self, inputs, q):
        x = inputs[0]
        return [softmax_fixed(x, self._axis(x.ndim), q.param("exp"), q.param("reciprocal"), q=q)]


@register
@dataclass(frozen=True)
class LogSoftmax(_SoftmaxLike):
    def along(self, x, axis):
        s = _shifted(x, axis)
        return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


@register
@dataclass(frozen=True)
class Hardmax(_SoftmaxLike):
    """1 at the first maximum along the axis, 0 elsewhere."""

    def along(self, x, axis):
        out = np.zeros_like(x)
        if x.size:
            np.put_along_axis(out, np.expand_dims(np.argmax(x, axis=axis), axis), 1, axis=axis)
        return out
