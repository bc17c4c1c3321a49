"""Normalization ops (BatchNormalization in inference form, LayerNormalization, InstanceNormalization) and the
softmax family (Softmax, LogSoftmax, Hardmax).

Statistics are computed in float32 for half-precision inputs (onnxruntime's CPU kernels do the same) and with
numpy's pairwise summation over one contiguous row per normalized group, which keeps float32 results within ~1e-6
relative of onnxruntime even over long rows (768+ channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op, normalize_axis
from accelgen.ir.ops.dtypes import onnx_dtype
from accelgen.ir.ops.registry import register
from accelgen.ir.types import TensorType, from_numpy


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
    """Fixed point (as the HLS kernel computes it): d = x - max(x) exactly; e = exp_table(d); s = sum(e) exactly;
    y = e * reciprocal_table(s), rounded to the output type. Both tables cover the calibrated ranges."""

    def along(self, x, axis):
        e = np.exp(_shifted(x, axis))
        return e / e.sum(axis=axis, keepdims=True)

    def calibration_probes(self, inputs):
        x = inputs[0].astype(np.float64)
        axis = self._axis(x.ndim)
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return {"shifted": shifted, "sum": np.exp(shifted).sum(axis=axis)}

    def fixed_precision(self, node, ctx):
        if self.coerce_2d:
            from accelgen.errors import QuantizationError

            raise QuantizationError(f"{node.name}: legacy (opset < 13) 2-D Softmax has no fixed-point kernel")
        return ctx.softmax_plan(node)

    def compute_fixed(self, inputs, q):
        x = inputs[0]
        axis = self._axis(x.ndim)
        exp_table, recip_table = q.param("exp_table"), q.param("reciprocal_table")
        e = exp_table.lookup(x - np.max(x, axis=axis, keepdims=True))
        return [e * recip_table.lookup(e.sum(axis=axis, keepdims=True))]


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
