"""The interpreter's input checking."""

import warnings

import numpy as np
import pytest
from onnx import parser

import accelgen
from accelgen.errors import InputError
from tests.ir.test_graph import small_graph


def test_runs_and_checks_inputs():
    g, *_ = small_graph()
    out = accelgen.run(g, {"x": np.array([[-1, 2, -3, 4]], np.float32)})
    np.testing.assert_array_equal(out["b"], [[1, 3, 1, 5]])
    with pytest.raises(InputError, match="missing 'x'"):
        accelgen.run(g, {})
    with pytest.raises(InputError, match="unknown 'y'"):
        accelgen.run(g, {"x": np.zeros((1, 4), np.float32), "y": 1})
    with pytest.raises(InputError, match=r"shape \(4,\)"):
        accelgen.run(g, {"x": np.zeros(4, np.float32)})
    with pytest.raises(InputError, match="dict"):
        accelgen.run(g, [np.zeros((1, 4))])


def test_float64_inputs_are_converted_but_other_kinds_refused():
    g, *_ = small_graph()
    out = accelgen.run(g, {"x": np.zeros((1, 4))})
    assert out["b"].dtype == np.float32
    with pytest.raises(InputError, match="dtype"):
        accelgen.run(g, {"x": np.zeros((1, 4), dtype=complex)})


def _identity_graph(dtype: str):
    return accelgen.load(parser.parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
    g ({dtype}[2] x) => ({dtype}[2] y) {{ y = Identity(x) }}"""))


def test_integer_inputs_convert_only_when_every_value_fits():
    g = _identity_graph("int32")
    assert accelgen.run(g, {"x": np.array([200, 1], np.uint8)})["y"].dtype == np.int32
    with pytest.raises(InputError, match=r"values in \[1, 1099511627776\].*int32"):
        accelgen.run(g, {"x": np.array([2**40, 1])})  # used to wrap around silently


def test_float_data_for_an_integer_input_is_refused_not_rounded():
    with pytest.raises(InputError, match="float64, the graph expects int64.*does not round"):
        accelgen.run(_identity_graph("int64"), {"x": np.array([0.0, 1.0])})


def test_float_narrowing_that_overflows_is_refused():
    with pytest.raises(InputError, match="too large for the graph's float16"):
        accelgen.run(_identity_graph("float16"), {"x": np.array([1e6, 1.0])})  # used to become inf
    out = accelgen.run(_identity_graph("bfloat16"), {"x": np.array([1.0, 2.0], np.float32)})["y"]
    assert out.dtype.name == "bfloat16"


@pytest.mark.parametrize("value, message", [([[1.0], [2.0, 3.0]], "not an array"), (None, "not a numeric array")])
def test_values_that_are_not_arrays(value, message):
    with pytest.raises(InputError, match=message):
        accelgen.run(_identity_graph("float"), {"x": value})


def test_run_needs_a_graph():
    with pytest.raises(InputError, match="needs a Graph"):
        accelgen.run("model.onnx", {})


def test_op_failing_on_the_data_names_the_node():
    m = parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (int64[2] idx) => (float[2,3] y) <float[4,3] w = {1,2,3,4,5,6,7,8,9,10,11,12}> { y = Gather(w, idx) }""")
    m.graph.node[0].name = "embed"
    with pytest.raises(InputError, match=r"'embed' \(Gather\).*index 7 is out of range"):
        accelgen.run(accelgen.load(m), {"idx": np.array([0, 7])})


def test_nan_and_inf_run_without_warnings():
    g = accelgen.load(parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[3] x) => (float[3] y) { y = Softmax(x) }"""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = accelgen.run(g, {"x": np.array([np.nan, np.inf, 1e30], np.float32)})["y"]
    assert np.isnan(out).all()


def test_outputs_that_are_constants_are_copies():
    g = accelgen.load(parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] w, float[2] y) <float[2] w = {1, 2}> { y = Relu(x) }"""))
    accelgen.run(g, {"x": np.zeros(2, np.float32)})["w"][:] = 0
    np.testing.assert_array_equal(accelgen.run(g, {"x": np.zeros(2, np.float32)})["w"], [1, 2])
