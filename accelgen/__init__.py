"""accelgen: compile ONNX neural networks to FPGA (HLS) projects and TVM kernels, with latency reports.

The public API:

    g = accelgen.load("model.onnx", input_shapes={"x": (1, 16)})
    outs = accelgen.run(g, {"x": x})
    g2 = accelgen.optimize(g)          # fused, cleaned-up copy; g is unchanged
    accelgen.supported_ops()
"""

from accelgen import errors
from accelgen.frontend.onnx.importer import load
from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.interpreter import run
from accelgen.ir.ops import supported_ops
from accelgen.ir.types import FixedType, Overflow, Rounding, TensorType
from accelgen.passes import optimize
from accelgen.passes.prune import prune
from accelgen.quant import quantize
from accelgen.quant.report import quantization_report

__version__ = "0.1.0"

__all__ = ["FixedType", "Graph", "Node", "Overflow", "Rounding", "TensorType", "Value", "errors", "load", "optimize",
           "prune", "quantize", "quantization_report", "run",
           "supported_ops", "__version__"]
