"""Resize (opset 10-19) and Upsample (opset 7-9): nearest, linear and cubic interpolation, one axis at a time.

Interpolation is separable, so an N-D resize is a 1-D resize per axis. Each output position maps to a source
coordinate x (coordinate_transformation_mode); nearest picks one source index, linear/cubic weigh the n taps around
x with a kernel (n = 2 or 4, wider when antialiasing a downscale). Indices past the edges are clamped, except with
exclude_outside (cubic) and tf_crop_and_resize, whose out-of-range outputs take extrapolation_value.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op
from accelgen.ir.ops.registry import register
from accelgen.ir.ops.shape import as_ints, normalize_axes

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn", "tf_crop_and_resize")
# "simple" is internal: the opset 7-10 behaviour (truncate when upscaling, ceil when downscaling).
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")


def _floats(value, what: str) -> tuple[float, ...] | None:
    """An optional float-list input; an empty tensor (how ONNX skips roi/scales) means absent."""
    if value is None:
        return None
    values = value if isinstance(value, tuple) else (value,)
    if not values:
        return None
    if not all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        raise InvalidModelError(f"Resize: {what} must be numbers, got {value!r}")
    return tuple(float(v) for v in values)


@register
@dataclass(frozen=True)
class Resize(Op):
    """nearest/linear/cubic, all coordinate transformation modes, antialias, axes, keep_aspect_ratio_policy."""

    mode: str = "nearest"
    coordinate_transformation_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    cubic_coeff_a: float = -0.75
    exclude_outside: int = 0
    extrapolation_value: float = 0.0
    antialias: int = 0
    keep_aspect_ratio_policy: str = "stretch"
    axes: tuple[int, ...] | None = None
    roi: tuple[float, ...] | None = None  # begins then ends, per resized axis; only tf_crop_and_resize uses it
    scales: tuple[float, ...] | None = None
    sizes: tuple[int, ...] | None = None
    # Opset 10 has (X, scales); from_onnx moves its slot 1 from roi to scales.
    attr_inputs = {1: "roi", 2: "scales", 3: "sizes"}

    def __post_init__(self):
        for name, allowed in (("mode", MODES), ("coordinate_transformation_mode", COORDINATE_MODES),
                              ("nearest_mode", NEAREST_MODES), ("keep_aspect_ratio_policy", ASPECT_POLICIES)):
            if getattr(self, name) not in allowed:
                raise InvalidModelError(f"Resize: {name} must be one of {', '.join(allowed)}, "
                                        f"got {getattr(self, name)!r}")

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        attrs = dict(attrs)
        if attrs.get("nearest_mode") == "simple":
            raise InvalidModelError("Resize: unknown nearest_mode 'simple'")
        if opset < 11:
            if "roi" in attrs:
                attrs["scales"] = attrs.pop("roi")
            attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="simple")
        for name in ("roi", "scales"):
            attrs[name] = _floats(attrs.get(name), name)
        if attrs.get("sizes") == ():
            attrs["sizes"] = None
        return cls.from_attrs(attrs)

    # -- planning: output shape and, per resized axis, (scale, roi begin, roi end) ---------------------------------
    def plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], dict[int, tuple[float, float, float]]]:
        rank = len(shape)
        axes = normalize_axes(as_ints(self.axes, "Resize", "axes"), rank, "Resize") if self.axes is not None \
            else tuple(range(rank))
        if (self.scales is None) == (self.sizes is None):
            raise ShapeError("Resize: exactly one of scales and sizes must be given")
        out = list(shape)
        if self.scales is not None:
            if len(self.scales) != len(axes) or any(s <= 0 for s in self.scales):
                raise ShapeError(f"Resize: scales {self.scales} must be {len(axes)} positive numbers")
            scales = dict(zip(axes, self.scales))
            for a in axes:
                out[a] = int(np.float32(scales[a]) * np.float32(shape[a]))  # float32, truncated, as in ORT
        else:
            sizes = as_ints(self.sizes, "Resize", "sizes")
            if len(sizes) != len(axes) or any(s < 0 for s in sizes):
                raise ShapeError(f"Resize: sizes {sizes} must be {len(axes)} non-negative integers")
            if any(shape[a] == 0 for a in axes):
                raise ShapeError(f"Resize: cannot resize the empty input {shape}")
            scales = {a: float(np.float32(s) / np.float32(shape[a])) for a, s in zip(axes, sizes)}
            if self.keep_aspect_ratio_policy != "stretch":
                pick = min if self.keep_aspect_ratio_policy == "not_larger" else max
                common = pick(scales.values())
                scales = {a: common for a in axes}
                sizes = tuple(int(common * shape[a] + 0.5) for a in axes)
            for a, s in zip(axes, sizes):
                out[a] = s
        roi = _floats(self.roi, "roi")
        if self.coordinate_transformation_mode == "tf_crop_and_resize":
            if roi is None or len(roi) != 2 * len(axes):
                raise ShapeError(f"Resize: tf_crop_and_resize needs roi with {2 * len(axes)} values, got {roi}")
            bounds = {a: (roi[i], roi[len(axes) + i]) for i, a in enumerate(axes)}
        else:
            bounds = {a: (0.0, 1.0) for a in axes}
        per_axis = {a: (scales[a], *bounds[a]) for a in axes}
        return tuple(out), per_axis

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        return [x.with_shape(self.plan(x.shape)[0])]

    def cost(self, inputs, outputs):
        base = super().cost(inputs, outputs)
        if self.mode == "nearest":
            return base
        # One multiply-accumulate per kernel tap, per element each 1-D pass produces (passes run in axis order).
        shape, per_axis = list(inputs[0].shape), self.plan(inputs[0].shape)[1]
        macs = 0
        for axis, (scale, lo, hi) in per_axis.items():
            if self.is_identity(inputs[0].shape[axis], outputs[0].shape[axis], scale, lo, hi):
                continue
            shape[axis] = outputs[0].shape[axis]
            stretch = min(scale, 1.0) if self.antialias else 1.0
            macs += math.prod(shape) * 2 * math.ceil((1 if self.mode == "linear" else 2) / stretch)
        return dataclasses.replace(base, macs=macs)

    @staticmethod
    def is_identity(n_in: int, n_out: int, scale: float, lo: float, hi: float) -> bool:
        """An axis that keeps its size at scale 1 over the whole input maps every output to its own input."""
        return n_out == n_in and scale == 1 and (lo, hi) == (0.0, 1.0)

    # -- numbers ---------------------------------------------------------------------------------------------------
    def source_coords(self, n_out: int, n_in: int, scale: float, lo: float, hi: float) -> np.ndarray:
        """The source coordinate of each output position along one axis, in float32 with onnxruntime's order of
        operations (nearest-neighbour ties depend on the last bit)."""
        f = np.float32
        y, s, n_in_f, n_out_f = np.arange(n_out, dtype=f), f(scale), f(n_in), f(n_out)
        mode = self.coordinate_transformation_mode
        if mode == "asymmetric":
            return y / s
        if mode == "half_pixel":
            return (y + f(0.5)) / s - f(0.5)
        if mode == "pytorch_half_pixel":
            return (y + f(0.5)) / s - f(0.5) if n_out > 1 else np.zeros(n_out, f)
        if mode == "tf_half_pixel_for_nn":
            return (y + f(0.5)) / s
        if mode == "align_corners":
            return y * (n_in_f - 1) / (n_out_f - 1) if n_out > 1 else np.zeros(n_out, f)
        if mode == "half_pixel_symmetric":
            offset = n_in_f / f(2) * (f(1) - n_out_f / (s * n_in_f))
            return (np.float64(offset) + (y.astype(np.float64) + 0.5) / np.float64(s) - 0.5).astype(f)
        # tf_crop_and_resize
        lo, hi = f(lo), f(hi)
        if n_out > 1:
            return lo * (n_in_f - 1) + y * (hi - lo) * (n_in_f - 1) / (n_out_f - 1)
        return np.full(n_out, f(0.5) * (lo + hi) * (n_in_f - 1), f)

    def nearest_index(self, x: np.ndarray, scale: float) -> np.ndarray:
        floor = np.floor(x)
        frac = x - floor
        mode = self.nearest_mode
        if mode == "simple":
            idx = np.ceil(x) if scale < 1 else np.trunc(x)
        elif mode == "floor":
            idx = floor
        elif mode == "ceil":
            idx = np.ceil(x)
        elif mode == "round_prefer_floor":
            idx = np.where(frac <= 0.5, floor, floor + 1)
        else:
            idx = np.where(frac < 0.5, floor, floor + 1)
        return idx.astype(np.int64)

    def kernel(self, d: np.ndarray) -> np.ndarray:
        d = np.abs(d)
        if self.mode == "linear":
            return np.clip(1 - d, 0, 1)
        a = self.cubic_coeff_a
        near = ((a + 2) * d - (a + 3)) * d * d + 1
        far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return np.where(d <= 1, near, np.where(d < 2, far, 0.0))

    def resize_axis(self, data: np.ndarray, axis: int, n_out: int, scale: float, lo: float, hi: float):
        n_in = data.shape[axis]
        x = self.source_coords(n_out, n_in, scale, lo, hi)
        if self.mode == "nearest":
            idx = np.clip(self.nearest_index(x, scale), 0, n_in - 1)
            result = np.take(data, idx, axis=axis)
        else:
            # Taps ceil(x) - n/2 ... ceil(x) + n/2 - 1; an antialiased downscale stretches the kernel by 1/scale.
            stretch = min(scale, 1.0) if self.antialias else 1.0
            support = 1 if self.mode == "linear" else 2
            n = 2 * math.ceil(support / stretch)
            taps = np.ceil(x)[:, None].astype(np.int64) - n // 2 + np.arange(n)
            w = self.kernel((taps - x[:, None]) * stretch)
            if self.antialias:
                w = w / w.sum(axis=1, keepdims=True)
            if self.exclude_outside:
                w = np.where((taps < 0) | (taps >= n_in), 0.0, w)
                total = w.sum(axis=1, keepdims=True)
                w = w / np.where(total == 0, 1.0, total)
            gathered = np.take(data.astype(np.float64), np.clip(taps, 0, n_in - 1), axis=axis)
            shape = (1,) * axis + w.shape + (1,) * (data.ndim - axis - 1)
            result = (gathered * w.reshape(shape)).sum(axis=axis + 1)
        if self.coordinate_transformation_mode == "tf_crop_and_resize":
            outside = ((x < 0) | (x > n_in - 1)).reshape((1,) * axis + (n_out,) + (1,) * (data.ndim - axis - 1))
            result = np.where(outside, self.extrapolation_value, result)
        return result

    def compute(self, inputs):
        x = inputs[0]
        out_shape, per_axis = self.plan(x.shape)
        y = x
        for axis, (scale, lo, hi) in per_axis.items():
            if not self.is_identity(x.shape[axis], out_shape[axis], scale, lo, hi) and out_shape[axis] and y.size:
                y = self.resize_axis(y, axis, out_shape[axis], scale, lo, hi)
        if y.shape != out_shape:  # an empty axis somewhere: nothing to interpolate
            y = np.zeros(out_shape, dtype=x.dtype)
        if x.dtype.kind in "iu" and y.dtype != x.dtype:
            info = np.iinfo(x.dtype)
            y = np.clip(np.rint(y), info.min, info.max)
        return [np.asarray(y).astype(x.dtype, copy=False)]


@register
@dataclass(frozen=True)
class Upsample(Op):
    """Imported as the equivalent Resize (asymmetric coordinates, opset 7-10 nearest rounding)."""

    mode: str = "nearest"
    scales: tuple[float, ...] | None = None
    attr_inputs = {1: "scales"}

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        op = cls.from_attrs(attrs)
        mode = {"bilinear": "linear", "trilinear": "linear"}.get(op.mode, op.mode)
        if mode not in ("nearest", "linear"):
            raise InvalidModelError(f"Upsample: mode must be nearest or linear, got {op.mode!r}")
        scales = _floats(op.scales, "scales")
        if scales is None or any(s < 1 for s in scales):
            raise InvalidModelError(f"Upsample: scales must be given and at least 1, got {op.scales!r}")
        return Resize(mode=mode, coordinate_transformation_mode="asymmetric", nearest_mode="simple", scales=scales)

