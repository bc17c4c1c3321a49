"""Op registry. Importing this package registers every op family module."""

from accelgen.ir.ops.base import ACCELGEN_DOMAIN, QONNX_DOMAIN, Cost, Op
from accelgen.ir.ops.registry import REGISTRY, lookup, register, supported_ops

# Registration side effects: each family module registers its ops.
from accelgen.ir.ops import activations, elementwise, linear, normalization, quant, reduce, shape  # noqa: E402,F401

__all__ = ["ACCELGEN_DOMAIN", "QONNX_DOMAIN", "Cost", "Op", "REGISTRY", "lookup", "register", "supported_ops"]
