"""Bad models and bad options get a clear AccelgenError (never a traceback from onnx or numpy, never a silently
different graph)."""

import io
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, parser

import accelgen
from accelgen.errors import InvalidModelError, ModelLoadError, ShapeError, UnsupportedOpsError
from tests.onnxmodels import RELU, external_data_model


def model(text: str) -> onnx.ModelProto:
    return parser.parse_model(text)


# -- files -------------------------------------------------------------------------------------------------------

def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    return buf.getvalue()


@pytest.mark.parametrize("content", [b"", _npz_bytes(), b"\x89PNG\r\n\x1a\n" + bytes(range(256)), RELU.encode()],
                         ids=["empty", "npz", "png", "onnx-text"])
def test_files_that_are_not_onnx(tmp_path, content):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="not"):
        accelgen.load(path)


def test_empty_path_unreadable_file_and_special_files(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="no model path"):
        accelgen.load("")
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        accelgen.load(fifo)  # reading it would block forever
    path = tmp_path / "m.onnx"
    onnx.save(model(RELU), path)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(ModelLoadError, match="cannot read .*Permission denied"):
        accelgen.load(path)


def test_checker_message_is_one_line_with_the_node():
    m = model(RELU)
    m.graph.node[0].input[0] = "undefined_value"
    m.graph.node[0].name = "relu1"
    with pytest.raises(ModelLoadError) as e:
        accelgen.load(m)
    assert "\n" not in str(e.value) and "relu1" in str(e.value) and "undefined_value" in str(e.value)


def test_opset_newer_than_onnx_knows():
    m = model(RELU)
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    with pytest.raises(ModelLoadError, match="opset"):
        accelgen.load(m)


def test_external_data_symlinked_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = external_data_model(tmp_path, "w.bin")
    os.symlink(tmp_path / "secret.bin", path.parent / "w.bin")
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        accelgen.load(path)


def test_external_data_location_with_a_nul_byte(tmp_path):
    with pytest.raises(ModelLoadError, match="bad location"):
        accelgen.load(external_data_model(tmp_path, "w\0.bin"))


def test_tensor_data_larger_than_its_shape(tmp_path):
    # The checker only catches data that is too short; more data than the shape needs reached numpy's reshape.
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], raw_data=bytes(20))
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    with pytest.raises(InvalidModelError, match="'w'.*does not fit its shape"):
        accelgen.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


# -- ops ---------------------------------------------------------------------------------------------------------

def test_unknown_ops_in_the_default_domain_are_all_listed():
    # The ONNX checker would stop at the first ("No Op registered for Foo"); the list comes first.
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] y) { a = Foo(x)
        b = Bar(a)
        y = Foo(b) }""")
    with pytest.raises(UnsupportedOpsError) as e:
        accelgen.load(m)
    assert e.value.unsupported == {"Foo": ["#0", "#2"], "Bar": ["#1"]}


def test_control_flow_and_ml_domain_ops_are_listed_as_unsupported():
    m = model("""<ir_version: 8, opset_import: ["" : 17, "ai.onnx.ml" : 3]>
    g (float[1,4] x, bool c) => (float[1,4] y) {
        a = ai.onnx.ml.Normalizer <norm = "L2"> (x)
        y = If (c) <then_branch = t () => (float[1,4] z) { z = Relu(a) },
                    else_branch = e () => (float[1,4] z2) { z2 = Sigmoid(a) }>
    }""")
    m.graph.node[0].name, m.graph.node[1].name = "norm", "branch"
    with pytest.raises(UnsupportedOpsError) as e:
        accelgen.load(m)
    assert e.value.unsupported == {"ai.onnx.ml.Normalizer": ["norm"], "If": ["branch"]}


LOCAL_FUNCTION = """<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
g (float[1,4] x) => (float[1,4] y) { y = local.ShiftRelu(x) }
<domain: "local", opset_import: ["" : 17]>
ShiftRelu (a) => (b) {
    one = Constant <value_float = 1.0> ()
    s = Sub(a, one)
    b = Relu(s)
}"""


def test_local_functions_are_inlined():
    g = accelgen.load(model(LOCAL_FUNCTION))
    assert [n.op_type for n in g.nodes] == ["Sub", "Relu"]
    out = accelgen.run(g, {"x": np.array([[0, 1, 2, 3]], np.float32)})["y"]
    np.testing.assert_array_equal(out, [[0, 0, 1, 2]])


def test_unsupported_op_inside_a_local_function_is_listed():
    m = model(LOCAL_FUNCTION.replace("b = Relu(s)", "b = NonZero(s)"))
    with pytest.raises(UnsupportedOpsError, match="NonZero"):
        accelgen.load(m)


def test_local_function_of_another_opset_is_refused():
    m = model(LOCAL_FUNCTION.replace('<domain: "local", opset_import: ["" : 17]>',
                                     '<domain: "local", opset_import: ["" : 13]>'))
    with pytest.raises(InvalidModelError, match="opset 13"):
        accelgen.load(m)


def test_folding_constants_out_of_range_is_a_model_error():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] y) <float[4] w = {1,2,3,4}, int64[1] i = {9}> {
        a = Gather(w, i)
        y = Add(x, a) }""")
    with pytest.raises(InvalidModelError, match=r"\(Gather\).*index 9"):
        accelgen.load(m)


def test_folding_a_huge_constant_is_refused_before_allocating():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] y) {
        s = Constant <value_ints = [100000, 100000, 4]> ()
        c = ConstantOfShape(s)
        y = Add(x, c) }""")
    m.graph.node[1].name = "zeros"
    with pytest.raises(ShapeError, match="'zeros' \\(ConstantOfShape\\).*elements"):
        accelgen.load(m)


# -- inputs and outputs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [[("x", (1, 4))], [1, 4], "x=1x4"])
def test_input_shapes_must_be_a_dict(shapes):
    with pytest.raises(ShapeError, match="dict"):
        accelgen.load(model(RELU), input_shapes=shapes)


@pytest.mark.parametrize("shape", ["14", (1.5, 4), (True, 4), (None, 4), 4, np.array([[1, 4]])])
def test_input_shape_dimensions_must_be_integers(shape):
    # "14" used to become (1, 4) and 1.5 used to become 1.
    with pytest.raises(ShapeError, match="integers"):
        accelgen.load(model(RELU), input_shapes={"x": shape})


def test_input_shapes_as_numpy_integers():
    g = accelgen.load(model(RELU), input_shapes={"x": np.array([2, 4])})
    assert g.inputs[0].shape == (2, 4)


def test_huge_shapes_are_refused():
    with pytest.raises(ShapeError, match="elements"):
        accelgen.load(model(RELU), input_shapes={"x": (10**30, 4)})
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[100000000000,4] x) => (float[100000000000,4] y) { y = Relu(x) }""")
    with pytest.raises(ShapeError, match="elements.*input_shapes"):
        accelgen.load(m)


def test_zero_size_inputs_are_allowed():
    # ONNX allows them (CastLike's `like`, empty reductions); they run like onnxruntime.
    g = accelgen.load(model(RELU), input_shapes={"x": (0, 4)})
    assert accelgen.run(g, {"x": np.zeros((0, 4), np.float32)})["y"].shape == (0, 4)


def test_input_shapes_naming_an_initializer():
    m = model("""<ir_version: 3, opset_import: ["" : 9]>
    g (float[1,4] x, float[1,4] b) => (float[1,4] y) <float[1,4] b = {1,2,3,4}> { y = Add(x, b) }""")
    with pytest.raises(ShapeError, match="'b' is an initializer.*inputs are 'x'"):
        accelgen.load(m, input_shapes={"b": (1, 4)})


def test_negative_declared_dimension():
    m = model(RELU)
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -4
    with pytest.raises(InvalidModelError, match="negative dimension"):
        accelgen.load(m)


def test_no_outputs_and_duplicate_outputs():
    m = model(RELU)
    del m.graph.output[:]
    with pytest.raises(InvalidModelError, match="no outputs"):
        accelgen.load(m)
    m = model(RELU)
    m.graph.output.append(m.graph.output[0])
    with pytest.raises(InvalidModelError, match="'y' is listed more than once"):
        accelgen.load(m)


def test_output_declared_with_another_element_type():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (int64[1,4] y) { y = Relu(x) }""")
    with pytest.raises(InvalidModelError, match="'y' is declared INT64.*f32"):
        accelgen.load(m)


def test_outputs_that_are_inputs_or_initializers():
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] x, float[1,4] w) <float[1,4] w = {1,2,3,4}> { }""")
    out = accelgen.run(accelgen.load(m), {"x": np.ones((1, 4), np.float32)})
    np.testing.assert_array_equal(out["x"], np.ones((1, 4)))
    np.testing.assert_array_equal(out["w"], [[1, 2, 3, 4]])


def test_node_named_like_a_value_does_not_rename_the_output():
    # A node named "y" used to take the name "y" first, so the graph output came back as "y_0".
    m = model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] y) { a = Relu(x)
        y = Relu(a) }""")
    m.graph.node[0].name = m.graph.node[1].name = "y"
    g = accelgen.load(m)
    assert [v.name for v in g.outputs] == ["y"]
    assert set(accelgen.run(g, {"x": np.ones((1, 4), np.float32)})) == {"y"}


def test_unused_initializer_of_an_unsupported_type_is_ignored():
    s = helper.make_tensor("names", TensorProto.STRING, [1], [b"a"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [s])
    g = accelgen.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert not g.constants
