"""Make examples/digits_cnn/digits_cnn.onnx: a small CNN trained on scikit-learn's 8x8 digits, plus
digits_sample.npz (a few held-out test images and their labels).

Run with a dev venv (not the project venv), from the repository root:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime onnxscript scikit-learn
    /tmp/torchvenv/bin/python examples/digits_cnn/make_digits_cnn.py

load_digits ships inside scikit-learn (no download). Images are scaled to [0, 1] and shaped (N, 1, 8, 8), NCHW.
Network: Conv(1->8, 3x3, pad 1)+ReLU+MaxPool(2) -> Conv(8->16, 3x3, pad 1)+ReLU+MaxPool(2) -> Flatten(64)
-> Linear(64, 32)+ReLU -> Linear(32, 10) (logits). Deterministic: fixed seeds, single thread.
Exported with the TorchScript exporter (dynamo=False), opset 13, with a dynamic batch axis.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
OUT = HERE / "digits_cnn.onnx"
SAMPLE = HERE / "digits_sample.npz"
N_SAMPLE = 16

torch.manual_seed(0)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 8x8 -> 4x4
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def main():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)

    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(15):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    acc = float((pred == y_test).mean())
    print(f"test accuracy: {acc:.4f} ({int((pred == y_test).sum())}/{len(y_test)})")

    torch.onnx.export(model, (torch.zeros(2, 1, 8, 8),), str(OUT), dynamo=False, opset_version=13,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    np.savez_compressed(SAMPLE, images=x_test[:N_SAMPLE], labels=y_test[:N_SAMPLE])
    # The whole split as raw 0..16 pixels (divide by 16 for the model): calibration and held-out data for the
    # quantization tests, without scikit-learn at test time. Same split as above (same seed and stratification).
    raw_train, raw_test = train_test_split(digits.images.astype(np.uint8), test_size=0.2, random_state=0, stratify=y)
    np.savez_compressed(HERE / "digits_split.npz", train_images=raw_train, train_labels=y_train.astype(np.uint8),
                        test_images=raw_test, test_labels=y_test.astype(np.uint8))

    proto = onnx.load(str(OUT))
    onnx.checker.check_model(proto, full_check=True)
    print("op census:", dict(Counter(n.op_type for n in proto.graph.node)))
    sess = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x_test})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x_test)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    ort_acc = float((got.argmax(1) == y_test).mean())
    print(f"onnxruntime test accuracy: {ort_acc:.4f}; sample labels: {y_test[:N_SAMPLE].tolist()}")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) and {SAMPLE} ({SAMPLE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
