"""accelgen: compile ONNX neural networks to FPGA (HLS) projects and TVM kernels, with latency reports.

The public API:

    g = accelgen.load("model.onnx", input_shapes={"x": (1, 16)})
    outs = accelgen.run(g, {"x": x})
    g2 = accelgen.optimize(g)                          # fused, cleaned-up copy; g is unchanged
    q = accelgen.quantize(g2, {"x": samples})          # fixed point; accelgen.run(q, ...) is bit-exact
    p = accelgen.prune(g2, sparsity=0.75)
    lib = accelgen.compile(g2, target="tvm-cpu", out_dir="build")
    accelgen.supported_ops()
"""

from accelgen import errors
from accelgen.backends import compile, estimate  # noqa: A004 - the public name the issues fix
from accelgen.frontend.onnx.importer import load
from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.interpreter import run
from accelgen.ir.ops import supported_ops
from accelgen.ir.types import FixedType, Overflow, Rounding, TensorType
from accelgen.passes import optimize
from accelgen.passes.prune import prune, prune_report
from accelgen.quant import quantize
from accelgen.quant.report import quantization_report

__version__ = "0.1.0"


def load_compiled(path):
    """A compiled TVM library folder, loaded without recompiling (TVM is imported only now)."""
    from accelgen.backends.tvm import load_compiled as load_tvm

    return load_tvm(path)


__all__ = ["FixedType", "Graph", "Node", "Overflow", "Rounding", "TensorType", "Value", "compile", "errors",
           "estimate", "load", "load_compiled", "optimize", "prune", "prune_report", "quantization_report",
           "quantize", "run", "supported_ops", "__version__"]
