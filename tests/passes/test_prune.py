"""accelgen.prune: magnitude (global/per layer), N:M and block structure, attention heads, OBS reconstruction from
calibration data; the report; clear errors for impossible requests."""

import numpy as np
import pytest

import accelgen
from accelgen.errors import OptionError
from accelgen.ir.ops.attention import MultiHeadAttention
from accelgen.passes.prune import nonzero_fraction, prunable_layers, prune, prune_report
from accelgen.passes.prune_obs import obs_prune, refit
from tests.quant.datasets import ROOT, jets

MLP = ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"
ENCODER = ROOT / "tests" / "data" / "models" / "encoder_torchscript.onnx"


@pytest.fixture(scope="module")
def mlp():
    return accelgen.optimize(accelgen.load(MLP, input_shapes={"input": (64, 16)}))


@pytest.fixture(scope="module")
def encoder():
    return accelgen.optimize(accelgen.load(ENCODER))


def weights(graph):
    return {l.name: l.matrix(l.value.data) for l in prunable_layers(graph)}


def test_jet_mlp_75_percent_magnitude_with_and_without_reconstruction(mlp):
    calibration, held_out = {"input": jets(512, seed=1)[0]}, {"input": jets(2048, seed=2)[0]}
    plain = prune_report(mlp, prune(mlp, 0.75), held_out)
    rebuilt = prune_report(mlp, prune(mlp, 0.75, calibration=calibration), held_out)
    # A quarter of the multipliers remain; measured agreement 0.990 without and 0.995 with reconstruction.
    assert plain.nonzero_fraction == pytest.approx(0.25, abs=1e-3)
    assert rebuilt.nonzero_fraction == pytest.approx(0.25, abs=1e-3)
    assert plain.outputs[0].agreement >= 0.98
    assert rebuilt.outputs[0].agreement >= 0.993
    assert rebuilt.outputs[0].mean_abs_error < plain.outputs[0].mean_abs_error
    assert "75.0%" in rebuilt.text()


def test_argument_unchanged_and_biases_untouched(mlp):
    before = {v.name: v.data.copy() for v in mlp.constants.values()}
    pruned = prune(mlp, 0.75, calibration={"input": jets(128, seed=1)[0]})
    assert all(np.array_equal(v.data, before[v.name]) for v in mlp.constants.values())
    for node in pruned.nodes:
        if node.op_type == "Dense":
            assert np.array_equal(node.inputs[2].data, before[node.inputs[2].name])


def test_layer_scope_prunes_each_layer_to_the_sparsity(mlp):
    for w in weights(prune(mlp, 0.5, scope="layer")).values():
        assert np.count_nonzero(w) == w.size // 2


def test_trained_encoder_2_4_with_reconstruction_keeps_cosine():
    """The trained tiny transformer (2 encoder layers, d=32): its 6-input embedding is left dense by default (6 is not
    a multiple of 4); every other layer is 2:4. Measured: cosine 0.973 / argmax agreement 0.914 without
    reconstruction, 0.99991 / 0.996 with it (256 held-out samples)."""
    g = accelgen.optimize(accelgen.load(ROOT / "examples" / "tiny_transformer" / "tiny_transformer.onnx"))
    calibration = {"x": np.random.default_rng(0).normal(size=(128, 16, 6)).astype(np.float32)}
    held_out = {"x": np.random.default_rng(1).normal(size=(256, 16, 6)).astype(np.float32)}
    plain = prune_report(g, prune(g, method="nm", n_m=(2, 4)), held_out)
    rebuilt = prune_report(g, prune(g, method="nm", n_m=(2, 4), calibration=calibration), held_out)
    dense_rows = [r for r in rebuilt.layers if r.sparsity == 0]
    assert [r.shape[0] for r in dense_rows] == [6]
    assert all(r.sparsity == 0.5 for r in rebuilt.layers if r not in dense_rows)
    assert rebuilt.outputs[0].cosine >= 0.999 > plain.outputs[0].cosine
    assert rebuilt.outputs[0].agreement >= 0.99
    with pytest.raises(OptionError, match="not a multiple of M=4"):
        prune(g, method="nm", layers=[dense_rows[0].name])


@pytest.mark.parametrize("calibrated", [False, True])
def test_n_m_keeps_n_of_every_m_inputs(mlp, calibrated):
    calibration = {"input": jets(128, seed=1)[0]} if calibrated else None
    for name, w in weights(prune(mlp, method="nm", n_m=(1, 4), calibration=calibration)).items():
        groups = (w.reshape(w.shape[0] // 4, 4, w.shape[1]) != 0).sum(axis=1)
        assert (groups <= 1).all(), name


@pytest.mark.parametrize("calibrated", [False, True])
def test_block_prunes_whole_blocks(mlp, calibrated):
    calibration = {"input": jets(128, seed=1)[0]} if calibrated else None
    pruned = prune(mlp, 0.5, method="block", block=(4, 1), layers=["/net/net.0/Gemm_0_0", "/net/net.2/Gemm_0_0"],
                   calibration=calibration)
    for name, w in weights(pruned).items():
        if name.startswith(("/net/net.0", "/net/net.2")):
            blocks = (w.reshape(w.shape[0] // 4, 4, w.shape[1]) != 0).sum(axis=1)
            assert set(np.unique(blocks)) <= {0, 4}, name
    assert nonzero_fraction(pruned) < 0.75


def test_reconstruction_beats_magnitude_on_correlated_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 24)) @ rng.normal(size=(24, 24))  # correlated inputs
    w = rng.normal(size=(24, 10))
    keep = np.abs(w) >= np.median(np.abs(w))
    err = lambda v: np.linalg.norm(x @ w - x @ v)
    fixed = obs_prune(w, x.T @ x, keep=keep)
    assert not fixed[~keep].any() and err(fixed) < err(w * keep)
    swept = obs_prune(w, x.T @ x, sparsity=0.5)
    assert np.count_nonzero(swept) == w.size // 2
    best = refit(w, x.T @ x, swept != 0, damping=1e-9)  # the exact least-squares weights for the sweep's mask
    assert not best[swept == 0].any() and err(best) < 0.95 * err(w * keep)
    for n in range(w.shape[1]):
        s = np.flatnonzero(swept[:, n])
        ls = np.linalg.lstsq(x[:, s], x @ w[:, n], rcond=None)[0]
        np.testing.assert_allclose(best[s, n], ls, rtol=1e-4, atol=1e-6)


def test_encoder_2_4_with_reconstruction(encoder):
    rng = np.random.default_rng(0)
    calibration = {"x": rng.normal(size=(64, 8, 32)).astype(np.float32)}
    held_out = {"x": np.random.default_rng(1).normal(size=(64, 8, 32)).astype(np.float32)}
    plain = prune_report(encoder, prune(encoder, method="nm", n_m=(2, 4)), held_out)
    rebuilt = prune_report(encoder, prune(encoder, method="nm", n_m=(2, 4), calibration=calibration), held_out)
    assert plain.nonzero_fraction == rebuilt.nonzero_fraction == 0.5
    # Measured: cosine 0.929 without, 0.960 with reconstruction. The 0.98 is not reached on this
    # random-weight test encoder with random-normal calibration (see the report).
    assert plain.outputs[0].cosine > 0.9
    assert rebuilt.outputs[0].cosine > plain.outputs[0].cosine + 0.01
    assert any(r.op == "MultiHeadAttention" and r.sparsity == 0.5 for r in rebuilt.layers)


@pytest.mark.parametrize("calibrated", [False, True])
def test_heads_pruned_as_whole_units(encoder, calibrated):
    calibration = {"x": np.random.default_rng(0).normal(size=(16, 8, 32)).astype(np.float32)} if calibrated else None
    mha = [n.name for n in encoder.nodes if n.op_type == "MultiHeadAttention"]
    pruned = prune(encoder, 0.5, heads=True, layers=mha, calibration=calibration)
    for node in pruned.nodes:
        if node.op_type != "MultiHeadAttention":
            continue
        wq = node.inputs[MultiHeadAttention.W_Q].data.reshape(32, 4, 8)
        wo = node.inputs[MultiHeadAttention.W_O].data.reshape(4, 8, 32)
        dead = [h for h in range(4) if not wq[:, h].any()]
        assert len(dead) == 2
        for h in dead:
            assert not wo[h].any()
            assert not node.inputs[MultiHeadAttention.W_V].data.reshape(32, 4, 8)[:, h].any()
        live = [h for h in range(4) if h not in dead]
        assert all(wo[h].any() for h in live)
    held_out = {"x": np.random.default_rng(1).normal(size=(8, 8, 32)).astype(np.float32)}
    assert prune_report(encoder, pruned, held_out).outputs[0].cosine > 0.8


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": 1.0}, "sparsity must be in [0, 1)"),
    ({"sparsity": -0.1}, "sparsity must be in [0, 1)"),
    ({"method": "random"}, "method must be one of"),
    ({"method": "nm", "n_m": (4, 2)}, "1 <= N <= M"),
    ({"method": "nm", "n_m": (1, 3)}, "not a multiple of M=3"),
    ({"method": "block", "block": (3, 4)}, "does not divide its weight matrix"),
    ({"layers": ["nope"]}, "unknown layer(s) 'nope'"),
    ({"heads": True}, "no MultiHeadAttention"),
    ({"scope": "model"}, "scope must be"),
    ({"calibration": {"input": np.zeros((3, 5), np.float32)}}, "calibration"),
])
def test_invalid_requests(mlp, kwargs, message):
    with pytest.raises(OptionError, match=None) as e:
        prune(mlp, **kwargs)
    assert message in str(e.value)
