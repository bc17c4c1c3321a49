"""Models from real exporters (PyTorch TorchScript and dynamo, Keras via tf2onnx) and the examples: load + run
agrees with onnxruntime at rtol 1e-4, atol 1e-5 on float32."""

from pathlib import Path

import numpy as np
import onnx
import pytest

import accelgen

from tests.ortcheck import check_against_ort

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "tests" / "data" / "models").glob("*.onnx")) + sorted((ROOT / "examples").glob("*/*.onnx"))


def make_inputs(model: onnx.ModelProto, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    initializers = {t.name for t in model.graph.initializer}
    for i in model.graph.input:
        if i.name in initializers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in i.type.tensor_type.shape.dim]
        dims[0] = batch
        if i.type.tensor_type.elem_type == onnx.TensorProto.INT64:  # attention masks: 0/1 with some padding
            mask = np.ones(dims, np.int64)
            mask[..., -2:] = 0
            feeds[i.name] = mask
        else:
            feeds[i.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def with_symbolic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose inputs and outputs have a symbolic batch, so onnxruntime accepts any batch."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for v in [*m.graph.input, *m.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"
    return m


def batch_is_free(path: Path) -> bool:
    """Exports traced at batch 1 bake the batch into Reshape constants; only others can take another batch."""
    model = onnx.load(path, load_external_data=False)
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    return not first.HasField("dim_value") or first.dim_value == 789444


CASES = [(p, 1) for p in MODELS] + [(p, 3) for p in MODELS if batch_is_free(p)]


@pytest.mark.parametrize("path, batch", CASES, ids=lambda c: c.stem if isinstance(c, Path) else f"batch{c}")
def test_agrees_with_onnxruntime(path, batch):
    model = onnx.load(path)
    feeds = make_inputs(model, batch)
    shapes = {k: v.shape for k, v in feeds.items()}
    graph = check_against_ort(with_symbolic_batch(model), feeds, input_shapes=shapes)
    assert all(v.shape[0] == batch for v in graph.inputs)


def test_frozen_batch_is_kept_without_input_shapes():
    model = onnx.load(ROOT / "tests" / "data" / "models" / "frozen_batch_mlp.onnx")
    g = accelgen.load(model)
    assert g.inputs[0].shape == (789444, 16)
    g = accelgen.load(model, input_shapes={"x": (1, 16)})
    assert g.outputs[0].shape == (1, 8)


def test_batch_baked_into_a_reshape_is_a_clear_error():
    model = onnx.load(ROOT / "tests" / "data" / "models" / "encoder_torchscript.onnx")
    with pytest.raises(accelgen.errors.ShapeError, match="Reshape.*cannot reshape"):
        accelgen.load(model, input_shapes={"x": (3, 8, 32)})
