"""Linear algebra: MatMul, Gemm and Einsum. (Convolutions live in conv.py, pooling in pool.py.)

Floating-point products are computed in float32 (float64 stays float64) and rounded back to the input dtype, as
onnxruntime's CPU kernels do for float16/bfloat16. MACs are the real multiply-accumulates of the product.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Cost, Op, broadcast_shapes
from accelgen.ir.ops.registry import register
from accelgen.ir.types import TensorType


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a product is accumulated in: float32 for every float narrower than 64 bits, else the dtype itself."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize >= 8:
        return dtype
    if dtype.kind in "fV" or dtype.name == "bfloat16":
        return np.dtype(np.float32)
    return dtype


def as_work(x: np.ndarray) -> np.ndarray:
    return x.astype(work_dtype(x.dtype), copy=False)


def same_dtype(op: Op, *types: TensorType | None) -> None:
    present = [t for t in types if t is not None]
    if any(t.dtype != present[0].dtype for t in present):
        raise ShapeError(f"{op.op_type}: input element types differ ({', '.join(str(t.dtype) for t in present)})")


@register
@dataclass(frozen=True)
class MatMul(Op):
    """numpy.matmul semantics: batch dims broadcast; a 1-D operand gains (then loses) a unit dim."""

    exact_in_fixed = True

    def infer(self, inputs):
        self.arity(inputs, 2)
        a, b = inputs
        same_dtype(self, a, b)
        if a.rank == 0 or b.rank == 0:
            raise ShapeError(f"MatMul: operands must have rank >= 1, got {a.shape} and {b.shape}")
        sa = (1, *a.shape) if a.rank == 1 else a.shape
        sb = (*b.shape, 1) if b.rank == 1 else b.shape
        if sa[-1] != sb[-2]:
            raise ShapeError(f"MatMul: inner dimensions differ: {a.shape} @ {b.shape} ({sa[-1]} != {sb[-2]})")
        batch = broadcast_shapes(sa[:-2], sb[:-2], op="MatMul (batch dims)")
        out = (*batch, *(() if a.rank == 1 else (sa[-2],)), *(() if b.rank == 1 else (sb[-1],)))
        return [TensorType(out, a.dtype)]

    def compute(self, inputs):
        a, b = inputs
        return [np.asarray(np.matmul(as_work(a), as_work(b))).astype(a.dtype, copy=False)]

    def fixed_precision(self, node, ctx):
        return ctx.linear_plan(node, fan_in=node.inputs[1].shape[-2] if node.inputs[1].type.rank > 1
                               else node.inputs[1].shape[0])

    def cost(self, inputs, outputs):
        k = inputs[0].shape[-1]
        return Cost(macs=outputs[0].numel * k, bytes=super().cost(inputs, outputs).bytes)


@register
@dataclass(frozen=True)
class Gemm(Op):
    """Y = alpha * A' @ B' + beta * C, with A', B' optionally transposed and C broadcast to (M, N)."""

    alpha: float = 1.0
    beta: float = 1.0
    transA: int = 0
    transB: int = 0

    ignored_attrs = frozenset({"broadcast"})  # opset < 7 only; C always broadcasts from opset 7

    def infer(self, inputs):
        self.arity(inputs, 2, 3)
        a, b = inputs[:2]
        c = inputs[2] if len(inputs) > 2 else None
        same_dtype(self, a, b, c)
        if a.rank != 2 or b.rank != 2:
            raise ShapeError(f"Gemm: A and B must be 2-D, got {a.shape} and {b.shape}")
        m, ka = a.shape[::-1] if self.transA else a.shape
        kb, n = b.shape[::-1] if self.transB else b.shape
        if ka != kb:
            raise ShapeError(f"Gemm: inner dimensions differ: A {a.shape} (transA={self.transA}) and B {b.shape} "
                             f"(transB={self.transB}) give K = {ka} and {kb}")
        if c is not None and (c.rank > 2 or any(d not in (1, o) for d, o in zip(c.shape[::-1], (n, m)))):
            raise ShapeError(f"Gemm: C of shape {c.shape} does not broadcast to the output shape {(m, n)}")
        return [TensorType((m, n), a.dtype)]

    def compute(self, inputs):
        a, b = inputs[0], inputs[1]
        c = inputs[2] if len(inputs) > 2 else None
        wa, wb = as_work(a), as_work(b)
        y = (wa.T if self.transA else wa) @ (wb.T if self.transB else wb)
        # alpha and beta are cast to the product's dtype (integer Gemm, which ORT lacks, truncates them)
        if self.alpha != 1.0:
            y = y * np.asarray(self.alpha).astype(y.dtype)
        if c is not None and self.beta != 0.0:
            wc = as_work(c)
            y = y + (wc * np.asarray(self.beta).astype(y.dtype) if self.beta != 1.0 else wc)
        return [np.asarray(y).astype(a.dtype, copy=False)]

    def cost(self, inputs, outputs):
        a = inputs[0]
        k = a.shape[0] if self.transA else a.shape[1]
        return Cost(macs=outputs[0].numel * k, bytes=super().cost(inputs, outputs).bytes)


_LETTERS = set(string.ascii_letters)


@dataclass(frozen=True)
class _Plan:
    equation: str  # explicit numpy equation (with '...' kept)
    out_shape: tuple[int, ...]
    macs: int


@register
@dataclass(frozen=True)
class Einsum(Op):
    """Einstein summation over any number of operands (numpy.einsum), with '...' broadcasting.

    In implicit mode (no '->') the output holds '...' then every label used once in ASCII order (uppercase
    first), as numpy and the ONNX reference order them (onnxruntime rejects uppercase output labels there).
    """

    equation: str = ""

    def __post_init__(self):
        if not self.equation.replace(" ", ""):
            raise InvalidModelError("Einsum: the 'equation' attribute is required")
        bad = set(self.equation) - _LETTERS - set(" .,->")
        if bad:
            raise InvalidModelError(f"Einsum: equation {self.equation!r} has invalid characters {sorted(bad)}")

    def plan(self, shapes: Sequence[tuple[int, ...]]) -> _Plan:
        eq = self.equation.replace(" ", "")
        lhs, arrow, rhs = eq.partition("->")
        terms = lhs.split(",")
        if len(terms) != len(shapes):
            raise ShapeError(f"Einsum: equation {self.equation!r} has {len(terms)} operand(s), got {len(shapes)}")
        sizes: dict[str, int] = {}
        ell_shapes = []
        for term, shape in zip(terms, shapes):
            labels = _labels(term, self.equation)
            n_ell = len(shape) - (len(labels) - labels.count("..."))
            if ("..." in labels and n_ell < 0) or ("..." not in labels and n_ell != 0):
                raise ShapeError(f"Einsum: term {term!r} of {self.equation!r} does not fit an operand of shape {shape}")
            dims, own = iter(shape), {}
            for lab in labels:
                if lab == "...":
                    ell_shapes.append(tuple(next(dims) for _ in range(n_ell)))
                    continue
                d = next(dims)
                seen = sizes.get(lab, d)
                # Across operands a label's size-1 dims broadcast (as numpy and ORT do); within one, sizes match.
                if own.setdefault(lab, d) != d or (seen != d and 1 not in (seen, d)):
                    raise ShapeError(f"Einsum: label {lab!r} of {self.equation!r} has sizes {seen} and {d} "
                                     f"(operand shapes {', '.join(map(str, shapes))})")
                sizes[lab] = max(seen, d)
        ell = broadcast_shapes(*ell_shapes, op="Einsum (ellipsis dims)") if ell_shapes else ()
        if arrow:
            out = _labels(rhs, self.equation)
            letters = [x for x in out if x != "..."]
            if len(set(letters)) != len(letters) or out.count("...") > 1:
                raise ShapeError(f"Einsum: output {rhs!r} of {self.equation!r} repeats a label")
            if set(letters) - set(sizes):
                raise ShapeError(f"Einsum: output {rhs!r} of {self.equation!r} uses labels no operand has")
            if ell and "..." not in out:
                raise ShapeError(f"Einsum: output {rhs!r} of {self.equation!r} drops the '...' dims {ell}")
        else:
            counts = {lab: sum(_labels(t, "").count(lab) for t in terms) for lab in sizes}
            once = sorted(lab for lab, n in counts.items() if n == 1)
            out = (["..."] if ell_shapes else []) + once
            rhs = "".join(out)
        out_shape = tuple(d for lab in out for d in (ell if lab == "..." else (sizes[lab],)))
        macs = int(np.prod([*sizes.values(), *ell], dtype=np.int64))
        return _Plan(f"{lhs}->{rhs}", out_shape, macs)

    def infer(self, inputs):
        self.arity(inputs, 1, 64)
        same_dtype(self, *inputs)
        return [TensorType(self.plan([t.shape for t in inputs]).out_shape, inputs[0].dtype)]

    def compute(self, inputs):
        plan = self.plan([x.shape for x in inputs])
        y = np.einsum(plan.equation, *[as_work(x) for x in inputs], optimize=len(inputs) > 2)
        return [np.asarray(y).astype(inputs[0].dtype, copy=False)]

    def cost(self, inputs, outputs):
        return Cost(macs=self.plan([t.shape for t in inputs]).macs, bytes=super().cost(inputs, outputs).bytes)


def _labels(term: str, equation: str) -> list[str]:
    """Split one einsum term into letters and '...'."""
    rest = term.replace("...", "")
    if "." in rest or "-" in rest or ">" in rest or term.count("...") > 1:
        raise ShapeError(f"Einsum: malformed term {term!r} in {equation!r}")
    out, i = [], 0
    while i < len(term):
        if term.startswith("...", i):
            out.append("...")
            i += 3
        else:
            out.append(term[i])
            i += 1
    return out
