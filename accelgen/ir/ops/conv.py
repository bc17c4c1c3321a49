"""Convolutions (Conv, ConvTranspose) and the sliding-window geometry they share with pooling (pool.py).

Output sizes follow onnxruntime's CPU kernels exactly (C++ integer division, SAME padding split, ceil_mode), since
that is what a model's author saw. Convolutions read a strided view of the padded input: Conv builds the im2col
matrix for one large matrix product when it fits IM2COL_LIMIT, else (and for depthwise) accumulates one product
per kernel tap; ConvTranspose scatters one product per tap. No Python loop ever runs over pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Cost, Op
from accelgen.ir.ops.linear import as_work, same_dtype
from accelgen.ir.ops.registry import register
from accelgen.ir.types import TensorType

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
IM2COL_LIMIT = 1 << 24  # elements of the im2col matrix above which Conv accumulates tap by tap instead


def cdiv(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero), which ORT's size formulas use."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass(frozen=True)
class Geometry:
    """Per spatial axis: kernel, stride, dilation, the padding actually applied, and output size."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    begin: tuple[int, ...]
    end: tuple[int, ...]
    out: tuple[int, ...]

    @property
    def span(self) -> tuple[int, ...]:
        """Input extent one window covers (the dilated kernel)."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))


Ints = tuple[int, ...]


def check_window_attrs(op: Op, nd: int, kernel: Sequence[int]) -> tuple[Ints, Ints, Ints]:
    """Strides, dilations and pads (ONNX defaults filled in) for `nd` spatial axes; ShapeError if lengths differ."""
    strides = tuple(op.strides) or (1,) * nd
    dilations = tuple(getattr(op, "dilations", ())) or (1,) * nd
    pads = tuple(op.pads) or (0,) * (2 * nd)
    if len(kernel) != nd or len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
        raise ShapeError(f"{op.op_type}: {nd} spatial dims need {nd} kernel dims, strides and dilations and "
                         f"{2 * nd} pads; got kernel {tuple(kernel)}, strides {strides}, dilations {dilations}, "
                         f"pads {pads}")
    if min(strides, default=1) < 1 or min(dilations, default=1) < 1 or min(kernel, default=1) < 1:
        raise ShapeError(f"{op.op_type}: kernel {tuple(kernel)}, strides {strides} and dilations {dilations} "
                         "must be positive")
    return strides, dilations, pads


def window_geometry(op: Op, spatial: Sequence[int], kernel: Sequence[int], pool: bool = False) -> Geometry:
    """Output size and effective pads of a forward window op (Conv, pools), as onnxruntime computes them.

    SAME_* pads to an output of ceil(in / stride). Conv sizes that padding from the dilated kernel and never pads
    negatively; pools (ORT's pool_attributes) use the undilated kernel and may pad negatively. Pool sizes use
    C++ truncating division, so a single window larger than the padded input still yields one output; with
    ceil_mode a last partial window is kept unless it would start past the input and its head padding. Outputs
    of size zero, which ORT would return empty, are refused.
    """
    nd = len(spatial)
    strides, dilations, pads = check_window_attrs(op, nd, kernel)
    ceil_mode = getattr(op, "ceil_mode", 0) if pool else 0
    begin, end, out = [], [], []
    for i, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations)):
        span = (k - 1) * d + 1
        if op.auto_pad == "VALID":
            pb = pe = 0
        elif op.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            need = (cdiv(n + s - 1, s) - 1) * s + (k if pool else span) - n
            need = need if pool else max(need, 0)
            pb = cdiv(need + 1, 2) if op.auto_pad == "SAME_LOWER" else cdiv(need, 2)
            pe = need - pb
        else:
            pb, pe = pads[i], pads[i + nd]
        free = n + pb + pe - span
        if not pool:
            o = free // s + 1 if free >= 0 else 0
        elif ceil_mode:
            o = -(-free // s) + 1
            if (o - 1) * s >= n + pb:
                o -= 1
        else:
            o = cdiv(free, s) + 1  # a window reaching past the padding still counts when it starts inside
        if o <= 0:
            raise ShapeError(f"{op.op_type}: spatial dims {tuple(spatial)} are too small for kernel {tuple(kernel)} "
                             f"with dilations {dilations}, strides {strides} and pads {pads} ({op.auto_pad})")
        begin.append(pb)
        end.append(pe)
        out.append(o)
    return Geometry(tuple(kernel), strides, dilations, tuple(begin), tuple(end), tuple(out))


def pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value=0) -> np.ndarray:
    """Pad (or, for negative amounts, crop) the axes after the first two."""
    crop = tuple(slice(max(-b, 0), x.shape[2 + i] - max(-e, 0)) for i, (b, e) in enumerate(zip(begin, end)))
    x = x[(slice(None), slice(None), *crop)]
    widths = [(0, 0), (0, 0), *((max(b, 0), max(e, 0)) for b, e in zip(begin, end))]
    if any(w != (0, 0) for w in widths):
        x = np.pad(x, widths, constant_values=value)
    return x


def windows(x: np.ndarray, g: Geometry, value=0) -> np.ndarray:
    """A read-only strided view (N, C, *out, *kernel) of every window of `x` (N, C, *spatial), padded with
    `value`. Padding is extended at the end as far as the last window reaches (ceil_mode)."""
    reach = [(o - 1) * s + span - n - b for o, s, span, n, b in zip(g.out, g.strides, g.span, x.shape[2:], g.begin)]
    xp = np.ascontiguousarray(pad_spatial(x, g.begin, reach, value))
    st = xp.strides
    shape = (*xp.shape[:2], *g.out, *g.kernel)
    strides = (*st[:2], *(st[2 + i] * s for i, s in enumerate(g.strides)),
               *(st[2 + i] * d for i, d in enumerate(g.dilations)))
    return as_strided(xp, shape, strides, writeable=False)


@dataclass(frozen=True)
class _ConvBase(Op):
    auto_pad: str = "NOTSET"
    dilations: tuple[int, ...] = ()
    group: int = 1
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def __post_init__(self):
        if self.auto_pad not in AUTO_PADS:
            raise InvalidModelError(f"{self.op_type}: auto_pad {self.auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
        if self.group < 1:
            raise InvalidModelError(f"{self.op_type}: group must be >= 1, got {self.group}")

    def _check(self, inputs) -> tuple[TensorType, TensorType, TensorType | None, tuple[int, ...]]:
        self.arity(inputs, 2, 3)
        x, w = inputs[:2]
        b = inputs[2] if len(inputs) > 2 else None
        same_dtype(self, x, w, b)
        if x.rank < 3 or w.rank != x.rank:
            raise ShapeError(f"{self.op_type}: X {x.shape} must have rank >= 3 and W {w.shape} the same rank")
        kernel = w.shape[2:]
        if self.kernel_shape and tuple(self.kernel_shape) != kernel:
            raise ShapeError(f"{self.op_type}: kernel_shape {self.kernel_shape} does not match W {w.shape}")
        return x, w, b, kernel


@register
@dataclass(frozen=True)
class Conv(_ConvBase):
    """X (N, C, *spatial) * W (M, C/group, *kernel) + B (M,) -> (N, M, *out)."""

    exact_in_fixed = True

    def geometry(self, spatial: Sequence[int], kernel: Sequence[int]) -> Geometry:
        return window_geometry(self, spatial, kernel)

    def infer(self, inputs):
        x, w, b, _ = self._check(inputs)
        m = w.shape[0]
        if x.shape[1] != w.shape[1] * self.group or m % self.group:
            raise ShapeError(f"Conv: X {x.shape} has {x.shape[1]} channels but W {w.shape} with group={self.group} "
                             f"expects {w.shape[1] * self.group} (and {m} output channels divisible by the group)")
        if b is not None and b.shape != (m,):
            raise ShapeError(f"Conv: bias B {b.shape} must have shape ({m},) for W {w.shape}")
        return [TensorType((x.shape[0], m, *self.geometry(x.shape[2:], w.shape[2:]).out), x.dtype)]

    def compute(self, inputs):
        x, w = inputs[0], inputs[1]
        xw, ww = as_work(x), as_work(w)
        g = self.geometry(x.shape[2:], w.shape[2:])
        n, c = x.shape[:2]
        m, groups = w.shape[0], self.group
        cg, mg, p = c // groups, m // groups, int(np.prod(g.out))
        view = windows(xw, g)  # (N, C, *out, *kernel)
        wk = ww.reshape(groups, mg, cg, -1)
        taps, nd = wk.shape[-1], len(g.out)
        if (cg > 1 or groups == 1) and n * c * p * taps <= IM2COL_LIMIT:
            # im2col: one (N*P, Cg*taps) @ (Cg*taps, Mg) product per group.
            cols = view.reshape(n, groups, cg, *g.out, *g.kernel)
            cols = cols.transpose(1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
            y = np.matmul(cols.reshape(groups, n * p, cg * taps), wk.reshape(groups, mg, -1).transpose(0, 2, 1))
            y = y.reshape(groups, n, p, mg).transpose(1, 0, 3, 2)
        else:
            # Shift-and-accumulate: one product per kernel tap, memory the size of the input (depthwise: Cg = 1).
            y = np.zeros((n, groups, mg, p), xw.dtype)
            for t, tap in enumerate(np.ndindex(*g.kernel)):
                xt = view[(Ellipsis, *tap)].reshape(n, groups, cg, p)  # copies one shifted image
                y += xt * wk[None, :, :, :, t] if cg == 1 else np.matmul(wk[:, :, :, t], xt)
        y = y.reshape(n, m, *g.out)
        if len(inputs) > 2 and inputs[2] is not None:
            y += as_work(inputs[2]).reshape(m, *(1,) * len(g.out))
        return [y.astype(x.dtype, copy=False)]

    def fixed_precision(self, node, ctx):
        w = node.inputs[1]
        return ctx.linear_plan(node, fan_in=int(np.prod(w.shape[1:])))

    def cost(self, inputs, outputs):
        w = inputs[1]
        return Cost(macs=outputs[0].numel * int(np.prod(w.shape[1:])), bytes=super().cost(inputs, outputs).bytes)


@register
@dataclass(frozen=True)
class ConvTranspose(_ConvBase):
    """The gradient of Conv: X (N, C, *in) and W (C, M/group, *kernel) -> (N, M, *out)."""

    output_padding: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()

    def geometry(self, spatial: Sequence[int], kernel: Sequence[int]) -> Geometry:
        """Output size and head/tail crop of the full transposed result, as onnxruntime computes them.

        With output_shape (or SAME_*, which asks for in * stride) the full result is cropped by the difference,
        the odd element going to the tail for SAME_UPPER and to the head otherwise; an output_shape larger than
        the full result extends it with zeros at the tail, up to what a forward Conv would map back to the input.
        """
        nd = len(spatial)
        strides, dilations, pads = check_window_attrs(self, nd, kernel)
        adj = tuple(self.output_padding) or (0,) * nd
        shape = tuple(self.output_shape)
        if len(adj) != nd or len(shape) not in (0, nd, nd + 2):
            raise ShapeError(f"ConvTranspose: output_padding {self.output_padding} and output_shape "
                             f"{self.output_shape} do not fit {nd} spatial dims")
        if any(a < 0 or a >= s for a, s in zip(adj, strides)):
            raise ShapeError(f"ConvTranspose: output_padding {adj} must be non-negative and less than the strides "
                             f"{strides}")
        shape = shape[-nd:] if shape else ()
        begin, end, out = [], [], []
        for i, (n, k, s, d, a) in enumerate(zip(spatial, kernel, strides, dilations, adj)):
            span = (k - 1) * d + 1
            full = (n - 1) * s + span + a
            if shape or self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                want = shape[i] if shape else n * s
                if want > full and want >= full - a + s:
                    raise ShapeError(f"ConvTranspose: output_shape {tuple(shape)} is too large for input spatial "
                                     f"dims {tuple(spatial)} with kernel {tuple(kernel)}, strides {strides} and "
                                     f"dilations {dilations}")
                total = max(full - want, 0)
                pb = total // 2 if self.auto_pad == "SAME_UPPER" else total - total // 2
                pe = total - pb
                o = want if shape else full - total
            elif self.auto_pad == "VALID":
                pb = pe = 0
                o = full
            else:
                pb, pe = pads[i], pads[i + nd]
                o = full - pb - pe
            if o <= 0:
                raise ShapeError(f"ConvTranspose: spatial dims {tuple(spatial)} with kernel {tuple(kernel)}, "
                                 f"strides {strides} and pads {pads} give output size {o}")
            begin.append(pb)
            end.append(pe)
            out.append(o)
        return Geometry(tuple(kernel), strides, dilations, tuple(begin), tuple(end), tuple(out))

    def infer(self, inputs):
        x, w, b, kernel = self._check(inputs)
        if w.shape[0] != x.shape[1] or x.shape[1] % self.group:
            raise ShapeError(f"ConvTranspose: X {x.shape} has {x.shape[1]} channels but W {w.shape} has "
                             f"{w.shape[0]} (channels must also divide by group={self.group})")
        m = w.shape[1] * self.group
        if b is not None and b.shape != (m,):
            raise ShapeError(f"ConvTranspose: bias B {b.shape} must have shape ({m},) for W {w.shape}, "
                             f"group={self.group}")
        return [TensorType((x.shape[0], m, *self.geometry(x.shape[2:], kernel).out), x.dtype)]

    def compute(self, inputs):
        x, w = inputs[0], inputs[1]
        xw, ww = as_work(x), as_work(w)
        spatial, kernel = x.shape[2:], w.shape[2:]
        g = self.geometry(spatial, kernel)
        n, c = x.shape[:2]
        groups = self.group
        cg, mg = c // groups, w.shape[1]
        # The full result spans every tap position and, for a large output_shape, zeros past it; `lo` shifts the
        # buffer so that explicit negative head pads still land inside it.
        lo = [max(-b, 0) for b in g.begin]
        size = [max((i - 1) * s + sp, b + o) + l for i, s, sp, b, o, l in
                zip(spatial, g.strides, g.span, g.begin, g.out, lo)]
        full = np.zeros((n, groups, mg, *size), xw.dtype)
        xg = xw.reshape(n, groups, cg, -1)
        wt = ww.reshape(groups, cg, mg, -1).transpose(0, 2, 1, 3)  # (G, Mg, Cg, taps)
        for t, tap in enumerate(np.ndindex(*kernel)):
            contrib = xg * wt[None, :, :, :, t] if cg == 1 else np.matmul(wt[:, :, :, t], xg)
            where = tuple(slice(l + k * d, l + k * d + (i - 1) * s + 1, s)
                          for l, k, d, i, s in zip(lo, tap, g.dilations, spatial, g.strides))
            full[(slice(None), slice(None), slice(None), *where)] += contrib.reshape(n, groups, mg, *spatial)
        crop = tuple(slice(l + b, l + b + o) for l, b, o in zip(lo, g.begin, g.out))
        y = full[(slice(None), slice(None), slice(None), *crop)].reshape(n, groups * mg, *g.out)
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + as_work(inputs[2]).reshape(-1, *(1,) * len(g.out))
        return [np.ascontiguousarray(y).astype(x.dtype, copy=False)]

    def cost(self, inputs, outputs):
        x, w = inputs[0], inputs[1]
        return Cost(macs=x.numel * int(np.prod(w.shape[1:])), bytes=super().cost(inputs, outputs).bytes)

