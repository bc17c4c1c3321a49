"""Make examples/jet_transformer/jet_transformer.onnx and sample.npz: a jet-tagging transformer of the shape of the
reference work ("Ultra Fast Transformers on FPGAs for Particle Physics Experiments"): 15 particles x 6 features,
a Dense input embedding, 3 encoder blocks with 2 heads, LayerNorm, mean pooling over the particles, 5 classes.

Run with a dev venv (not the project venv), from the repository root:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime
    /tmp/torchvenv/bin/python examples/jet_transformer/make_jet_transformer.py

Model: input (batch, 15, 6) -> Linear(6, 16) -> 3 x nn.TransformerEncoderLayer(d_model=16, nhead=2,
dim_feedforward=32, activation="relu", batch_first=True, norm_first=True) -> LayerNorm(16) -> mean over the
particles -> Linear(16, 5) logits. Pre-norm blocks (the tiny_transformer example is post-norm), so the two
examples cover both block layouts.

Data: synthetic jets made in numpy. Each class has its own number of prongs (1, 1, 2, 2, 3: light quark, gluon,
W, Z, top), particle multiplicity, momentum sharing and angular spread; a particle's features are its log
momentum fraction, its eta and phi offsets from the jet axis, its distance to the axis, its log energy and a
charge-like sign. Jets with fewer than 15 particles are zero padded, particles sorted by momentum. Trained for a
few seconds (Adam). sample.npz holds float32 "calibration" (300 jets) and "test" (200 jets) inputs and "labels" of
the test jets; calibration.npz the same calibration jets under the input name "x" (for `accelgen compile
--calibration`). Deterministic: fixed seeds, single thread.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
OUT = HERE / "jet_transformer.onnx"
SAMPLE = HERE / "sample.npz"
CALIBRATION = HERE / "calibration.npz"  # the calibration jets keyed by the model's input name, for the CLI
PARTICLES, FEATURES, D_MODEL, HEADS, FFN, BLOCKS, CLASSES = 15, 6, 16, 2, 32, 3, 5
PRONGS = (1, 1, 2, 2, 3)  # q, g, W, Z, t
MULTIPLICITY = (7, 13, 9, 10, 14)  # mean particle count
SPREAD = (0.06, 0.12, 0.10, 0.11, 0.14)  # angular spread around each prong

torch.manual_seed(0)
torch.set_num_threads(1)
torch.backends.mha.set_fastpath_enabled(False)


def synthetic_jets(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, CLASSES, n)
    x = np.zeros((n, PARTICLES, FEATURES), np.float32)
    for j, c in enumerate(labels):
        count = int(np.clip(rng.poisson(MULTIPLICITY[c]), 2, PARTICLES))
        axes = rng.normal(0, 0.25 if PRONGS[c] > 1 else 0.0, (PRONGS[c], 2))
        prong = rng.integers(0, PRONGS[c], count)
        angles = axes[prong] + rng.normal(0, SPREAD[c], (count, 2))
        share = rng.dirichlet(np.full(count, 0.6 if c == 0 else 1.0))
        energy = share * rng.normal(500, 50) * (1 + 0.05 * rng.normal(size=count))
        order = np.argsort(-share)
        feats = np.stack([np.log(share + 1e-4), angles[:, 0], angles[:, 1], np.hypot(angles[:, 0], angles[:, 1]),
                          np.log1p(np.abs(energy)) / 3, rng.choice([-1.0, 0.0, 1.0], count)], axis=1)
        x[j, :count] = feats[order]
    return x, labels


class JetTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(FEATURES, D_MODEL)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=FFN, dropout=0.0, activation="relu",
                                       batch_first=True, norm_first=True)
            for _ in range(BLOCKS))
        self.norm = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, x):
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))


def main():
    rng = np.random.default_rng(0)
    x, y = synthetic_jets(6000, rng)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = JetTransformer()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for epoch in range(10):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    calibration, _ = synthetic_jets(300, np.random.default_rng(1))
    test, labels = synthetic_jets(200, np.random.default_rng(2))
    with torch.no_grad():
        logits = model(torch.from_numpy(test)).numpy()
    print(f"synthetic test accuracy: {(logits.argmax(1) == labels).mean():.3f}")

    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(2, PARTICLES, FEATURES),), str(OUT), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    np.savez_compressed(SAMPLE, calibration=calibration, test=test, labels=labels.astype(np.int64))
    np.savez_compressed(CALIBRATION, x=calibration)

    proto = onnx.load(str(OUT))
    onnx.checker.check_model(proto, full_check=True)
    print(f"{OUT.name}: {OUT.stat().st_size} bytes, op census {dict(Counter(n.op_type for n in proto.graph.node))}")
    sess = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": test})[0], logits, rtol=1e-4, atol=1e-5)
    print(f"onnxruntime agrees with torch on {len(test)} jets; {SAMPLE.name}: {SAMPLE.stat().st_size} bytes")


if __name__ == "__main__":
    main()
