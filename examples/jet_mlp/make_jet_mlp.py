"""Make examples/jet_mlp/jet_mlp.onnx: the 16-64-32-32-5 jet-tagging MLP (hls4ml's classic benchmark shape).

Run with a dev venv (not the project venv), from the repository root:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime onnxscript scikit-learn
    /tmp/torchvenv/bin/python examples/jet_mlp/make_jet_mlp.py

The network is trained briefly on synthetic data (five Gaussian blobs in 16 features standing in for the jet
features), so that its weights look trained rather than random. Deterministic: fixed seeds, single thread.
Exported with the TorchScript exporter (dynamo=False), opset 13, with a dynamic batch axis.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
OUT = HERE / "jet_mlp.onnx"

torch.manual_seed(0)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


class JetMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(16, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 32), nn.ReLU(),
            nn.Linear(32, 5),
            nn.Softmax(dim=1),
        )

    def forward(self, x):
        return self.net(x)


def synthetic_jets(n: int, rng: np.random.Generator):
    centers = rng.normal(0.0, 1.5, (5, 16))
    y = rng.integers(0, 5, n)
    x = centers[y] + rng.normal(0.0, 1.0, (n, 16))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def main():
    rng = np.random.default_rng(0)
    x, y = synthetic_jets(4096, rng)
    model = JetMLP()
    head = model.net[:-1]  # train on logits; Softmax stays in the exported graph
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(5):
        for i in range(0, len(x), 256):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(head(x[i:i + 256]), y[i:i + 256])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    print(f"train accuracy on synthetic jets: {acc:.3f}")

    torch.onnx.export(model, (torch.zeros(2, 16),), str(OUT), dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})

    proto = onnx.load(str(OUT))
    onnx.checker.check_model(proto, full_check=True)
    print("op census:", dict(Counter(n.op_type for n in proto.graph.node)))
    sess = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    xs = x[:7].numpy()
    got = sess.run(None, {"input": xs})[0]
    with torch.no_grad():
        want = model(x[:7]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); onnxruntime agrees with torch")


if __name__ == "__main__":
    main()
