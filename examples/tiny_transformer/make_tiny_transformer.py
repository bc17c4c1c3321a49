"""Make examples/tiny_transformer/tiny_transformer.onnx (TorchScript exporter, opset 17) and
tiny_transformer_dynamo.onnx (torch.export-based "dynamo" exporter, opset 18) from the same tiny encoder.

Run with a dev venv (not the project venv), from the repository root:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime onnxscript scikit-learn
    /tmp/torchvenv/bin/python examples/tiny_transformer/make_tiny_transformer.py

Model: input (batch, 16, 6) -> Linear(6, 32) embedding -> 2 x nn.TransformerEncoderLayer(d_model=32, nhead=4,
dim_feedforward=64, batch_first=True, activation="gelu", norm_first=False) -> mean over the sequence ->
Linear(32, 3) logits. Briefly trained on a synthetic 3-class sequence task; exported in eval mode with a dynamic
batch axis. PyTorch's fused "fast path" for TransformerEncoderLayer is switched off so that both exports hold
standard ONNX ops only. Deterministic: fixed seeds, single thread.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
OUT_TS = HERE / "tiny_transformer.onnx"
OUT_DYNAMO = HERE / "tiny_transformer_dynamo.onnx"
SEQ, FEATURES, D_MODEL, HEADS, LAYERS, CLASSES = 16, 6, 32, 4, 2, 3

torch.manual_seed(0)
torch.set_num_threads(1)
torch.backends.mha.set_fastpath_enabled(False)


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(FEATURES, D_MODEL)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=64, dropout=0.1, activation="gelu",
                                       batch_first=True, norm_first=False)
            for _ in range(LAYERS))
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, x):
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(h.mean(dim=1))


def synthetic(n: int, gen: torch.Generator):
    """Class = which of the first three features has the largest sum over the sequence."""
    x = torch.randn(n, SEQ, FEATURES, generator=gen)
    y = x[:, :, :CLASSES].sum(dim=1).argmax(dim=1)
    return x, y


def check(path: Path, model: nn.Module, x: torch.Tensor):
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = Counter(n.op_type for n in proto.graph.node)
    domains = {n.domain for n in proto.graph.node}
    assert domains <= {"", "ai.onnx"}, f"non-standard op domains in {path.name}: {domains}"
    assert not proto.functions, f"{path.name} holds local functions"
    print(f"{path.name}: opset {proto.opset_import[0].version}, op census: {dict(ops)}")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    print(f"  {path.stat().st_size} bytes; onnxruntime agrees with torch on batch {len(x)}")


def main():
    gen = torch.Generator().manual_seed(0)
    model = TinyTransformer()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(150):
        x, y = synthetic(64, gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    x_test, y_test = synthetic(512, gen)
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"synthetic test accuracy: {acc:.3f}")

    example = (torch.zeros(2, SEQ, FEATURES),)
    with torch.no_grad():
        torch.onnx.export(model, example, str(OUT_TS), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.onnx.export(model, example, dynamo=True, opset_version=18, external_data=False,
                                    input_names=["x"], output_names=["logits"],
                                    dynamic_shapes={"x": {0: batch}})
        program.save(str(OUT_DYNAMO), external_data=False)

    check(OUT_TS, model, x_test[:5])
    check(OUT_DYNAMO, model, x_test[:5])


if __name__ == "__main__":
    main()
