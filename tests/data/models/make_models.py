"""Regenerate the PyTorch-exported test fixtures in tests/data/models/ (see README.md beside this file).

Run with a dev venv (not the project venv), from the repository root:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime onnxscript scikit-learn
    /tmp/torchvenv/bin/python tests/data/models/make_models.py

Every fixture comes from a real exporter (TorchScript: torch.onnx.export(..., dynamo=False); dynamo:
torch.onnx.export(..., dynamo=True)), is checked with onnx.checker and with onnxruntime against PyTorch, and has
static shapes unless said otherwise. Weights are random (fixed seeds), with every parameter perturbed after
construction so that no two layers share weights (nn.TransformerEncoder deep-copies one layer) and LayerNorm
scales/biases and zero-initialised biases are not the trivial 1/0; the models are in eval mode. PyTorch's
fused "fast path" for nn.TransformerEncoderLayer is switched off so the exports hold standard ONNX ops only.
"""

import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
D, HEADS, FF = 32, 4, 64

torch.set_num_threads(1)
torch.backends.mha.set_fastpath_enabled(False)


# --------------------------------------------------------------------------------------------------- models

def encoder() -> nn.Module:
    """nn.TransformerEncoder: 2 post-norm layers, d=32, 4 heads, ReLU FFN, batch_first."""
    layer = nn.TransformerEncoderLayer(D, HEADS, dim_feedforward=FF, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


class FusedQKVBlock(nn.Module):
    """A GPT/ViT-style block written by hand: one Linear makes Q, K and V; explicit matmul/softmax attention;
    output projection; residual + LayerNorm; GELU MLP; residual + LayerNorm."""

    def __init__(self, d=D, heads=HEADS, ff=FF):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x):
        b, t, c = x.shape
        hd = c // self.heads
        q, k, v = self.qkv(x).split(c, dim=-1)
        q = q.reshape(b, t, self.heads, hd).transpose(1, 2)
        k = k.reshape(b, t, self.heads, hd).transpose(1, 2)
        v = v.reshape(b, t, self.heads, hd).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, c)
        x = self.ln1(x + self.proj(y))
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))


def erf_gelu(x):
    """The original BERT / HuggingFace gelu."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class BertLayer(nn.Module):
    """HuggingFace's BertLayer (BertAttention(BertSelfAttention + BertSelfOutput), BertIntermediate, BertOutput),
    written out by hand; the extended additive mask is built inside from a 0/1 mask as (1 - mask) * -10000."""

    def __init__(self, hidden=D, heads=HEADS, intermediate=4 * D, eps=1e-12, p=0.1):
        super().__init__()
        self.heads, self.head_size = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(p)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_out_dropout = nn.Dropout(p)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.out_dropout = nn.Dropout(p)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.heads, self.head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        ext = attention_mask[:, None, None, :].to(dtype=hidden_states.dtype)   # (batch, 1, 1, seq)
        ext = (1.0 - ext) * -10000.0
        q = self.transpose_for_scores(self.query(hidden_states))
        k = self.transpose_for_scores(self.key(hidden_states))
        v = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        scores = scores + ext
        probs = self.attn_dropout(nn.functional.softmax(scores, dim=-1))
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (self.heads * self.head_size,))
        attention_output = self.attn_norm(self.attn_out_dropout(self.attn_out(context)) + hidden_states)
        inter = erf_gelu(self.intermediate(attention_output))
        return self.out_norm(self.out_dropout(self.output(inter)) + attention_output)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))


class LegacyLayerNormNet(nn.Module):
    """Linear -> LayerNorm -> GELU(erf) -> Linear on (batch, seq, features); at opset 11 the TorchScript exporter
    decomposes LayerNorm into ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add and GELU into Div/Erf/Add/Mul/Mul."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.norm = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(F.gelu(self.norm(self.fc1(x))))


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter (see the module docstring); return the model in eval mode."""
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


# --------------------------------------------------------------------------------------------------- export

def export_torchscript(model, args, path: Path, opset: int, input_names, output_names):
    with torch.no_grad():
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=output_names)


def export_dynamo(model, args, path: Path, opset: int, input_names, output_names):
    with torch.no_grad():
        program = torch.onnx.export(model, args, dynamo=True, opset_version=opset, external_data=False,
                                    input_names=input_names, output_names=output_names)
    program.save(str(path), external_data=False)


def verify(path: Path, model: nn.Module, args, input_names):
    """onnx.checker + onnxruntime against PyTorch; standard domain only; print the op census."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    domains = {n.domain for n in proto.graph.node}
    assert domains <= {"", "ai.onnx"}, f"{path.name}: non-standard op domains {domains}"
    assert not proto.functions, f"{path.name} holds local functions"
    size = path.stat().st_size
    assert size < 1 << 20, f"{path.name} is {size} bytes"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: a.numpy() for name, a in zip(input_names, args)}
    got = sess.run(None, feeds)
    with torch.no_grad():
        want = model(*args)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)
    ops = dict(Counter(n.op_type for n in proto.graph.node))
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    print(f"{path.name}: opset {opset}, {size} bytes, onnxruntime agrees with torch\n  op census: {ops}")


def both(name, model, args, input_names, output_names, ts_opset=17, dynamo_opset=18):
    ts, dy = HERE / f"{name}_torchscript.onnx", HERE / f"{name}_dynamo.onnx"
    export_torchscript(model, args, ts, ts_opset, input_names, output_names)
    verify(ts, model, args, input_names)
    export_dynamo(model, args, dy, dynamo_opset, input_names, output_names)
    verify(dy, model, args, input_names)


def main():
    g = torch.Generator().manual_seed(1)

    torch.manual_seed(0)
    model = randomize(encoder(), 0)
    both("encoder", model, (torch.randn(1, 8, D, generator=g),), ["x"], ["y"])

    torch.manual_seed(1)
    model = randomize(FusedQKVBlock(), 1)
    both("fused_qkv_block", model, (torch.randn(1, 8, D, generator=g),), ["x"], ["y"])

    # BERT: opset 14 (what HuggingFace's exporters used for BERT), so LayerNorm comes out decomposed too.
    torch.manual_seed(2)
    model = randomize(BertLayer(), 2)
    args = (torch.randn(1, 8, D, generator=g), torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.int64))
    path = HERE / "bert_layer.onnx"
    export_torchscript(model, args, path, 14, ["hidden_states", "attention_mask"], ["output"])
    verify(path, model, args, ["hidden_states", "attention_mask"])

    # Frozen batch: export at batch 4, then declare batch 789444 on the graph input and output, so that a
    # compiler must take the real batch from input_shapes. (No intermediate value_info is kept.)
    torch.manual_seed(3)
    model = randomize(mlp(), 3)
    path = HERE / "frozen_batch_mlp.onnx"
    export_torchscript(model, (torch.randn(4, 16, generator=g),), path, 13, ["x"], ["y"])
    proto = onnx.load(str(path))
    del proto.graph.value_info[:]
    for v in list(proto.graph.input) + list(proto.graph.output):
        dim = v.type.tensor_type.shape.dim[0]
        assert dim.dim_value == 4, dim
        dim.dim_value = 789444
    onnx.save(proto, str(path))
    verify(path, model, (torch.randn(789444, 16, generator=g),), ["x"])

    torch.manual_seed(4)
    model = randomize(LegacyLayerNormNet(), 4)
    path = HERE / "legacy_layernorm.onnx"
    args = (torch.randn(2, 4, 16, generator=g),)
    export_torchscript(model, args, path, 11, ["x"], ["y"])
    verify(path, model, args, ["x"])


if __name__ == "__main__":
    main()
