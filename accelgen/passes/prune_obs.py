"""Second-order pruning of one layer with weight reconstruction (Optimal Brain Surgeon, as SparseGPT applies it).

For a layer y = x W (W [K inputs, N outputs]) and calibration inputs X [P, K], the output error of changing W is
||X W - X W'||^2 = sum over outputs n of dw_n^T H dw_n with H = X^T X. Removing input k of output n costs
w_kn^2 / [H^-1]_kk, and the best compensation moves the other weights of that output along row k of H^-1. SparseGPT
makes this affordable by sweeping the inputs in a fixed order: once input k is decided, later inputs compensate
using the Cholesky factor of H^-1 restricted to the inputs not yet decided, the same for every output, so all
outputs are processed together. Masks are chosen per block of inputs (adaptive), per group of M inputs (N:M), or
given up front (block structure, attention heads).
"""

from __future__ import annotations

import numpy as np

BLOCK = 128  # inputs decided together: the mask of unstructured pruning is chosen per block of this many


def obs_prune(w: np.ndarray, hessian: np.ndarray, *, sparsity: float | None = None,
              n_m: tuple[int, int] | None = None, keep: np.ndarray | None = None, damping: float = 0.01) -> np.ndarray:
    """W [K, N] pruned and reconstructed: exactly one of `sparsity` (fraction zeroed, chosen by OBS saliency),
    `n_m` (keep N of every M inputs per output) or `keep` (a fixed [K, N] mask, True = keep)."""
    if sum(x is not None for x in (sparsity, n_m, keep)) != 1:
        raise ValueError("give exactly one of sparsity, n_m, keep")
    wt = np.array(w, np.float64).T  # [N, K]: one row per output, as the sweep runs over inputs
    h = np.array(hessian, np.float64)
    k = h.shape[0]
    dead = np.diag(h) == 0  # inputs that are always 0 on the data: their weights never matter
    h[dead, dead] = 1.0
    wt[:, dead] = 0.0
    h[np.diag_indices(k)] += damping * float(np.mean(np.diag(h)))
    hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper factor U of H^-1 = U^T U
    drop_fixed = None if keep is None else ~np.asarray(keep, bool).T
    m = n_m[1] if n_m is not None else 1
    block = max(m, BLOCK - BLOCK % m)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = wt[:, i1:i2].copy()
        q1 = np.zeros_like(w1)
        err1 = np.zeros_like(w1)
        h1 = hinv[i1:i2, i1:i2]
        d1 = np.diag(h1)
        if drop_fixed is not None:
            drop = drop_fixed[:, i1:i2].copy()
        elif sparsity is not None:
            saliency = (w1 / d1) ** 2
            drop = np.zeros(w1.shape, bool)
            count = int(round(sparsity * w1.size))
            drop.reshape(-1)[np.argsort(saliency.reshape(-1), kind="stable")[:count]] = True
        else:
            drop = np.zeros(w1.shape, bool)
        for i in range(i2 - i1):
            col = w1[:, i]
            if n_m is not None and i % m == 0:
                n, group = n_m[0], slice(i, i + m)
                saliency = (w1[:, group] / d1[group]) ** 2
                lowest = np.argsort(saliency, axis=1, kind="stable")[:, : m - n]
                np.put_along_axis(drop[:, group], lowest, True, axis=1)
            q = np.where(drop[:, i], 0.0, col)
            q1[:, i] = q
            e = (col - q) / d1[i]
            w1[:, i:] -= np.outer(e, h1[i, i:])
            err1[:, i] = e
        wt[:, i1:i2] = q1
        wt[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return wt.T


def refit(target: np.ndarray, hessian: np.ndarray, keep: np.ndarray, damping: float = 0.01) -> np.ndarray:
    """The kept weights re-solved exactly: per output n, w_S = argmin ||X target_n - X w||^2 over the weights S it
    keeps (ridge-damped like the sweep). The sweep only moves weights not yet decided; this finishes its job."""
    h = np.array(hessian, np.float64)
    h[np.diag_indices(h.shape[0])] += damping * max(float(np.mean(np.diag(h))), 1e-12)
    rhs = np.asarray(hessian, np.float64) @ target
    out = np.zeros_like(target, dtype=np.float64)
    for n in range(target.shape[1]):
        s = np.flatnonzero(keep[:, n])
        if s.size:
            out[s, n] = np.linalg.solve(h[np.ix_(s, s)], rhs[s, n])
    return out
