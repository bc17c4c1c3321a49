"""The errors accelgen raises for problems in what the user gave it.

Every user-facing failure is one of these, with a message that says what is wrong and what to do. The CLI prints
the message on one line and exits with status 2; anything else escaping is a bug in accelgen.
"""


class AccelgenError(Exception):
    """Base class: a problem with the user's model, inputs or options."""


class ModelLoadError(AccelgenError):
    """The model file is missing, not ONNX, truncated, or fails the ONNX checker."""


class UnsupportedOpsError(AccelgenError):
    """The model uses op types accelgen does not implement; lists all of them with node names."""

    def __init__(self, unsupported: dict[str, list[str]]):
        self.unsupported = unsupported
        parts = []
        for op_type, names in sorted(unsupported.items()):
            shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
            parts.append(f"{op_type} x{len(names)} ({shown})")
        super().__init__(f"unsupported ops: {'; '.join(parts)}")


class ShapeError(AccelgenError):
    """Shapes are dynamic without a given shape, contradict the model, or do not fit an op."""


class InvalidModelError(AccelgenError):
    """The model is well-formed ONNX but something in it cannot be compiled (bad attribute, dynamic weight...)."""


class InputError(AccelgenError):
    """Inputs given to run() do not match the graph (names, shapes, dtypes), or an op fails on their values (an index
    out of range)."""


class OptionError(AccelgenError):
    """An option is out of range or malformed."""


class QuantizationError(AccelgenError):
    """A quantization request cannot be met: bad precision options or calibration data, or an op without
    fixed-point semantics."""
