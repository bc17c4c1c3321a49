"""Block-sparse (BSR-style) lowering of a pruned constant weight, in the same SIMD panels as the dense kernel.

The dense kernel streams W packed as [N / L, K, L] panels (L = SIMD lanes). Here each panel keeps only its
row blocks (ROW_BLOCK consecutive inputs x L outputs) that hold a non-zero, as
    data [N / L, T, ROW_BLOCK, L]   and   rows [N / L, T] (the block's first input / ROW_BLOCK),
T being the largest count over the panels (shorter panels are padded with zero blocks of row 0, which add
exactly 0). The kernel is the dense one with an indirect input row, so our contraction schedule applies
unchanged: vectorized over the L outputs, register-blocked over tokens, reduction over (T, ROW_BLOCK).

It pays when whole panel-row blocks are zero: block pruning with blocks L outputs wide (block=(4, 16) on AVX-512,
(4, 8) on AVX2). Smaller blocks, N:M and unstructured sparsity leave almost every panel-row block with some
non-zero, so they keep the dense kernel. When to switch is a rule from measurements (docs/backends.md): the
sparse kernel is used when at most MAX_DENSITY of the panel-row blocks remain.
"""

from __future__ import annotations

import numpy as np

ROW_BLOCK = 4
MAX_DENSITY = 0.6  # measured on d=768: 50% of blocks kept is 1.3-1.5x faster, 68% kept is slower (docs)


def panel_blocks(w: np.ndarray, lanes: int) -> np.ndarray:
    """bool [N / L, K / ROW_BLOCK]: which panel-row blocks of W [K, N] hold a non-zero."""
    k, n = w.shape
    blocks = w.reshape(k // ROW_BLOCK, ROW_BLOCK, n // lanes, lanes)
    return np.any(blocks != 0, axis=(1, 3)).T


def sparse_layout(w: np.ndarray, lanes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, data) for the sparse kernel, or None when W is not sparse enough in whole blocks (or does not tile)."""
    k, n = w.shape
    if not lanes or n % lanes or k % ROW_BLOCK or not w.size:
        return None
    keep = panel_blocks(w, lanes)
    count = int(keep.sum(axis=1).max())
    if count > MAX_DENSITY * keep.shape[1]:
        return None
    count = max(count, 1)
    panels = n // lanes
    rows = np.zeros((panels, count), np.int32)
    data = np.zeros((panels, count, ROW_BLOCK, lanes), w.dtype)
    for p in range(panels):
        kept = np.flatnonzero(keep[p])
        rows[p, :len(kept)] = kept
        for t, r in enumerate(kept):
            data[p, t] = w[r * ROW_BLOCK:(r + 1) * ROW_BLOCK, p * lanes:(p + 1) * lanes]
    return rows, data


def sparse_packed_matmul(x, rows, data):
    """x [..., K] times the block-sparse W: y[..., n] = sum over the kept blocks of panel n // L."""
    from tvm import te

    *lead, _ = x.shape
    panels, count, row_block, lanes = data.shape
    t = te.reduce_axis((0, count), "t")
    i = te.reduce_axis((0, row_block), "i")
    return te.compute(
        (*lead, panels * lanes),
        lambda *idx: te.sum(x[(*idx[:-1], rows[idx[-1] // lanes, t] * row_block + i)]
                            * data[idx[-1] // lanes, t, i, idx[-1] % lanes], axis=[t, i]),
        name="matmul")
