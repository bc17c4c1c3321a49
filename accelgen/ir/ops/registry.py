"""The one op registry: (domain, op_type) -> op class."""

from __future__ import annotations

from accelgen.ir.ops.base import ACCELGEN_DOMAIN, QONNX_DOMAIN, Op

REGISTRY: dict[tuple[str, str], type[Op]] = {}

# Exporters spell the QONNX domain several ways; all mean the same ops.
DOMAIN_ALIASES = {
    "ai.onnx": "",
    "onnx.brevitas": QONNX_DOMAIN,
    "finn.custom_op.general": QONNX_DOMAIN,
    "qonnx.custom_op.general": QONNX_DOMAIN,
}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: add an op to the registry (op_type defaults to the class name)."""
    if not cls.__dict__.get("op_type"):
        cls.op_type = cls.__name__
    key = (cls.domain, cls.op_type)
    if key in REGISTRY:
        raise ValueError(f"op {key} registered twice")
    REGISTRY[key] = cls
    return cls


def lookup(domain: str, op_type: str) -> type[Op] | None:
    return REGISTRY.get((DOMAIN_ALIASES.get(domain, domain), op_type))


def supported_ops() -> set[str]:
    """The ONNX op type names the frontend accepts (standard and QONNX domains; not accelgen's own fused ops)."""
    return {op_type for (domain, op_type) in REGISTRY if domain != ACCELGEN_DOMAIN}
