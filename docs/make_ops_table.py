"""Write docs/supported_ops.md from the op registry (a test checks the committed file is current).

    python docs/make_ops_table.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from accelgen.backends.hls.layers import SUPPORTED as HLS_KERNELS
from accelgen.ir.ops import REGISTRY
from accelgen.ir.ops.base import ACCELGEN_DOMAIN

OUT = Path(__file__).with_name("supported_ops.md")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"{f.name}={f.default!r}"
    return f.name


def render() -> str:
    lines = [
        "# Supported ops",
        "",
        "Generated from accelgen's op registry by `python docs/make_ops_table.py`; do not edit by hand.",
        "",
        "*Compile-time inputs* are ONNX inputs that accelgen needs as constants (a Reshape's shape, a Slice's",
        "bounds): they may come from initializers, Constant nodes or shape computations that fold at import, and",
        "become attributes of the IR op.",
        "",
        "*Fixed point*: `accelgen.quantize` gives the op fixed-point semantics (the interpreter runs it bit-exactly",
        "and the HLS backend can take it). *HLS*: the HLS backend has a kernel for it (everything else is refused by",
        "node name; ops that passes fuse, such as BatchNormalization into Dense or Conv, need no kernel of their own).",
        "",
    ]
    for title, internal in (("ONNX and QONNX ops", False), ("accelgen's own ops (produced by passes)", True)):
        rows = sorted((k, v) for k, v in REGISTRY.items() if (k[0] == ACCELGEN_DOMAIN) == internal)
        if not rows:
            continue
        lines += [f"## {title} ({len(rows)})", "",
                  "| op | domain | attributes (defaults) | compile-time inputs | fixed point | HLS | notes |",
                  "|---|---|---|---|---|---|---|"]
        for (domain, op_type), cls in rows:
            attrs = ", ".join(_default(f) for f in dataclasses.fields(cls)) or "-"
            static = ", ".join(f"{slot}: {name}" for slot, name in sorted(cls.attr_inputs.items())) or "-"
            doc = _note(cls)
            fixed = "yes" if cls.exact_in_fixed or hasattr(cls, "fixed_precision") else "-"
            hls = "yes" if op_type in HLS_KERNELS else "-"
            lines.append(f"| {op_type} | {domain or 'ai.onnx'} | {attrs} | {static} | {fixed} | {hls} | {doc} |")
        lines.append("")
    return "\n".join(lines)


def _note(cls) -> str:
    """The first line of the op's own docstring (dataclass() invents `Name(fields)` when there is none)."""
    own = (cls.__dict__.get("__doc__") or "").strip()
    return "" if not own or own.startswith(cls.__name__ + "(") else own.splitlines()[0].replace("|", "\\|")


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
