"""The ONNX frontend: what it accepts, what it folds, and the clear errors it gives for bad input."""

import numpy as np
import onnx
import pytest
from onnx import parser

import accelgen
from accelgen.errors import InvalidModelError, ModelLoadError, ShapeError, UnsupportedOpsError
from tests.onnxmodels import RELU, external_data_model
from tests.ortcheck import check_against_ort, rand


def model(text: str) -> onnx.ModelProto:
    return parser.parse_model(text)


def test_load_path_bytes_and_proto_agree(tmp_path):
    m = model(RELU)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    for source in (m, str(path), path, m.SerializeToString()):
        g = accelgen.load(source)
        assert [n.op_type for n in g.nodes] == ["Relu"]
        assert g.inputs[0].shape == (1, 4)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        accelgen.load(tmp_path / "nope.onnx")


def test_not_onnx_and_truncated(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf at all \xff\xfe")
    with pytest.raises(ModelLoadError, match="not"):
        accelgen.load(junk)
    good = model(RELU).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelLoadError):
        accelgen.load(cut)
    with pytest.raises(ModelLoadError, match="folder"):
        accelgen.load(tmp_path)


def test_checker_rejection_is_a_load_error():
    m = model(RELU)
    m.graph.node[0].input[0] = "undefined_value"
    with pytest.raises(ModelLoadError, match="checker"):
        accelgen.load(m)


def test_unsupported_ops_are_listed_together_with_names_and_counts():
    m = model("""<ir_version: 8, opset_import: ["" : 17, "custom" : 1]>
    g (float[1,4] x) => (float[1,4] y) {
        a = custom.Foo(x)
        b = custom.Foo(a)
        c = custom.Bar(b)
        y = Relu(c)
    }""")
    m.graph.node[0].name, m.graph.node[1].name, m.graph.node[2].name = "foo1", "foo2", "bar"
    with pytest.raises(UnsupportedOpsError) as e:
        accelgen.load(m)
    assert e.value.unsupported == {"custom.Foo": ["foo1", "foo2"], "custom.Bar": ["bar"]}
    assert "custom.Foo x2 ('foo1', 'foo2')" in str(e.value) and "custom.Bar x1 ('bar')" in str(e.value)


def test_batch_defaults_to_one_and_other_dynamic_dims_need_shapes():
    assert accelgen.load(model(RELU)).inputs[0].shape == (1, 4)
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[N,S,4] x) => (float[N,S,4] y) { y = Relu(x) }""")
    with pytest.raises(ShapeError, match=r"dynamic dimensions \[N, S, 4\].*input_shapes"):
        accelgen.load(m)
    assert accelgen.load(m, input_shapes={"x": (2, 3, 4)}).outputs[0].shape == (2, 3, 4)


def test_input_shapes_override_a_frozen_batch():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[789444,4] x) => (float[789444,4] y) { y = Relu(x) }""")
    assert accelgen.load(m).inputs[0].shape == (789444, 4)
    g = accelgen.load(m, input_shapes={"x": (1, 4)})
    assert g.outputs[0].shape == (1, 4)


def test_input_shapes_errors():
    m = model(RELU)
    with pytest.raises(ShapeError, match="rank 2"):
        accelgen.load(m, input_shapes={"x": (1, 4, 1)})
    with pytest.raises(ShapeError, match="'z'.*inputs are 'x'"):
        accelgen.load(m, input_shapes={"z": (1, 4)})
    with pytest.raises(ShapeError, match="integers"):
        accelgen.load(m, input_shapes={"x": ("a", 4)})
    with pytest.raises(ShapeError, match="negative"):
        accelgen.load(m, input_shapes={"x": (-1, 4)})


def test_shape_contradicting_the_model_names_the_node():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[N,4] x) => (float[N,3] y) <float[4,3] w = {1,2,3,4,5,6,7,8,9,10,11,12}> { y = MatMul(x, w) }""")
    m.graph.node[0].name = "proj"
    with pytest.raises(ShapeError, match="'proj' \\(MatMul\\)"):
        accelgen.load(m, input_shapes={"x": (1, 5)})


def test_runtime_shape_argument_is_a_clear_error():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2,6] x, int64[2] s) => (float[3,4] y) { y = Reshape(x, s) }""")
    with pytest.raises(ShapeError, match="known at compile time"):
        accelgen.load(m)


def test_initializer_that_is_also_an_input_is_a_constant():
    m = model("""<ir_version: 3, opset_import: ["" : 9]>
    g (float[1,4] x, float[1,4] b) => (float[1,4] y) <float[1,4] b = {1,2,3,4}> { y = Add(x, b) }""")
    g = accelgen.load(m)
    assert [v.name for v in g.inputs] == ["x"]
    np.testing.assert_allclose(accelgen.run(g, {"x": np.zeros((1, 4), np.float32)})["y"], [[1, 2, 3, 4]])


def test_constant_nodes_and_folding():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] y) {
        c = Constant <value_floats = [1.0, 2.0, 3.0, 4.0]> ()
        d = Relu(c)
        y = Add(x, d)
    }""")
    g = accelgen.load(m)
    assert [n.op_type for n in g.nodes] == ["Add"]
    check_against_ort(m, {"x": rand(1, 4)})


def test_external_data_inside_the_model_folder(tmp_path):
    path = external_data_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    g = accelgen.load(path)
    out = accelgen.run(g, {"x": np.ones((1, 4), np.float32)})["y"]
    np.testing.assert_allclose(out, [[1, 2, 3, 4]])


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    path = external_data_model(tmp_path, location)
    with pytest.raises(ModelLoadError, match="inside the model's folder"):
        accelgen.load(path)


def test_missing_external_data_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        accelgen.load(external_data_model(tmp_path, "gone.bin"))


def test_legacy_attribute_semantics_are_refused_not_ignored():
    # Before opset 7, Add broadcast only with broadcast=1 and an axis; accelgen does not guess.
    m = model("""<ir_version: 3, opset_import: ["" : 6]>
    g (float[1,4] x, float[4] b) => (float[1,4] y) { y = Add <broadcast = 1> (x, b) }""")
    with pytest.raises(InvalidModelError, match="unsupported attribute.*broadcast"):
        accelgen.load(m)


def test_unsupported_element_type():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (string[1] x) => (string[1] y) { y = Identity(x) }""")
    with pytest.raises(InvalidModelError, match="STRING"):
        accelgen.load(m)


def test_qonnx_domain_without_opset_import_is_accepted():
    m = model("""<ir_version: 8, opset_import: ["" : 13]>
    g (float[1,4] x) => (float[1,4] y) <float s = {0.5}> { y = onnx.brevitas.BipolarQuant(x, s) }""")
    del m.opset_import[1:]
    g = accelgen.load(m)
    out = accelgen.run(g, {"x": np.array([[-1, 0, 0.2, 3]], np.float32)})["y"]
    np.testing.assert_array_equal(out, [[-0.5, 0.5, 0.5, 0.5]])
