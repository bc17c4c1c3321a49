"""Calibration and held-out data for the example models, made without torch or scikit-learn."""

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def jets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic jets examples/jet_mlp/make_jet_mlp.py trained on: five Gaussian blobs in 16 features (the
    centres are the first draw of seed 0, as in training; `seed` picks fresh samples around them)."""
    centers = np.random.default_rng(0).normal(0.0, 1.5, (5, 16))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    return (centers[y] + rng.normal(0.0, 1.0, (n, 16))).astype(np.float32), y


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's digits split as the CNN was trained: images scaled to [0, 1], shape (N, 1, 8, 8)."""
    d = np.load(ROOT / "examples" / "digits_cnn" / "digits_split.npz")
    scale = lambda a: (a.astype(np.float32) / 16.0)[:, None]  # noqa: E731
    return {"train": scale(d["train_images"]), "test": scale(d["test_images"]), "test_labels": d["test_labels"]}
