"""Op registry. Importing this package registers every op family module."""

from accelgen.ir.ops.base import ACCELGEN_DOMAIN, QONNX_DOMAIN, Cost, Op
from accelgen.ir.ops.registry import REGISTRY, lookup, register, supported_ops

# Registration side effects: each family module registers its ops.
from accelgen.ir.ops import (  # noqa: E402,F401
    activations, attention, conv, conversion, elementwise, fused, linear, movement, normalization, pool, quant,
    reduce, resize, shape,
)

__all__ = ["ACCELGEN_DOMAIN", "QONNX_DOMAIN", "Cost", "Op", "REGISTRY", "lookup", "register", "supported_ops"]
