"""Graph names become C identifiers in the generated project; none may clash with C++ or with the templates."""

import numpy as np
from onnx import TensorProto, helper

import accelgen
from accelgen.backends.hls import compile
from tests.backends.hls.conftest import interpreter


def test_tensor_names_that_are_cpp_keywords_or_template_locals(tmp_path):
    """Graph names become C identifiers; ones that are C++ keywords or names the templates declare (the C-sim
    bridge's `s`, the testbench's `inputs`) are renamed, and the project still builds and runs bit-exact."""
    w = helper.make_tensor("new", TensorProto.FLOAT, [4, 3], np.linspace(-1, 1, 12).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["s", "new"], ["int"]), helper.make_node("Relu", ["int"], ["inputs"])],
        "names", [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, [1, 3])], [w])
    g = accelgen.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    q = accelgen.quantize(accelgen.optimize(g), {"s": x})
    project = compile(q, out_dir=tmp_path / "prj", calibration={"s": x})
    np.testing.assert_array_equal(project.predict({"s": x})["inputs"], interpreter(q, "s", x))
