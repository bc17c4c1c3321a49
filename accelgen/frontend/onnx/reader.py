"""Reading an ONNX file safely: clear errors for missing, unreadable, truncated or malformed files; external data
only from inside the model's own folder; model-local functions inlined; the checker made tolerant of QONNX exports
that forget their domain's opset.

`read_model` parses; `check_model` runs the ONNX checker. The importer lists unsupported ops in between, so a
model full of unknown ops gets that whole list rather than the checker's complaint about the first one.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import onnx.inliner
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from accelgen.errors import InvalidModelError, ModelLoadError
from accelgen.ir.ops.registry import DOMAIN_ALIASES

_CHECKER_LIMIT = 2**31 - 1  # protobuf's serialisation limit; larger models skip the in-memory checker
_MESSAGE_LIMIT = 300  # characters of a checker message shown


def read_model(model) -> onnx.ModelProto:
    """A ModelProto from a path, bytes or ModelProto, with external data loaded and local functions inlined.
    A ModelProto given by the caller is never modified."""
    if isinstance(model, onnx.ModelProto):
        proto, base = model, None
    elif isinstance(model, (bytes, bytearray)):
        proto, base = _parse(bytes(model), "<bytes>"), None
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not str(model):
            raise ModelLoadError("no model path given")
        if not path.exists():
            raise ModelLoadError(f"no such file: {path}")
        if path.is_dir():
            raise ModelLoadError(f"{path} is a folder, not an ONNX file")
        if not path.is_file():
            raise ModelLoadError(f"{path} is not a regular file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelLoadError(f"cannot read {path}: {e.strerror or e}") from None
        proto, base = _parse(data, str(path)), path.resolve().parent
    else:
        raise ModelLoadError(f"expected a path or an onnx.ModelProto, got {type(model).__name__}")
    _load_external_data(proto, base)
    return _inline_functions(proto)


def check_model(proto: onnx.ModelProto) -> None:
    """Raise ModelLoadError unless the ONNX checker accepts the model and its opset is one onnx knows."""
    newest = onnx.defs.onnx_opset_version()
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx") and o.version > newest:
            raise ModelLoadError(f"the model uses ONNX opset {o.version}; the newest this installation knows is "
                                 f"{newest}")
    checked = proto
    declared = {o.domain for o in proto.opset_import}
    missing = {n.domain for n in proto.graph.node if n.domain in DOMAIN_ALIASES and n.domain not in declared}
    if missing:  # QONNX exports often use their custom domain without declaring it
        checked = onnx.ModelProto()
        checked.CopyFrom(proto)
        for domain in sorted(missing):
            checked.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    if checked.ByteSize() > _CHECKER_LIMIT:
        return
    try:
        onnx.checker.check_model(checked)
    except onnx.checker.ValidationError as e:
        raise ModelLoadError(f"the ONNX checker rejects the model: {_one_line(str(e))}") from None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{where} is not a valid ONNX model (truncated or not ONNX): {e}") from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelLoadError(f"{where} is not an ONNX model: it has no graph or no opset_import")
    return proto


def _load_external_data(proto: onnx.ModelProto, base: Path | None) -> None:
    tensors = [t for t in external_data_helper._get_all_tensors(proto) if external_data_helper.uses_external_data(t)]
    if not tensors:
        return
    if base is None:
        raise ModelLoadError("the model keeps weights in external data files; load it from its path so they can be found")
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        where = f"tensor {t.name!r}: external data {location!r}"
        rel = Path(location)
        if not location or rel.is_absolute() or ".." in rel.parts:
            raise ModelLoadError(f"{where}: the location must be a relative path inside the model's folder")
        try:
            target = (base / rel).resolve()
        except (OSError, RuntimeError, ValueError) as e:  # symlink loops, NUL bytes
            raise ModelLoadError(f"{where}: bad location ({e})") from None
        if not target.is_relative_to(base):
            raise ModelLoadError(f"{where} resolves outside the model's folder")
        if not target.is_file():
            raise ModelLoadError(f"{where}: file not found next to the model")
    try:
        external_data_helper.load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"reading external data failed: {e}") from None


def _inline_functions(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Expand calls to model-local functions (exact: each call becomes the function's body)."""
    if not proto.functions:
        return proto
    opset = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    for f in proto.functions:
        for o in f.opset_import:
            domain = o.domain or "ai.onnx"
            if domain in opset and o.version != opset[domain]:
                raise InvalidModelError(f"local function {f.domain}.{f.name} uses {domain} opset {o.version}, the "
                                        f"model opset {opset[domain]}; accelgen inlines only functions of the "
                                        "model's opset")
    try:
        return onnx.inliner.inline_local_functions(proto)
    except Exception as e:  # noqa: BLE001 - the C++ inliner reports malformed functions with assorted exceptions
        raise ModelLoadError(f"inlining the model's local functions failed: {_one_line(str(e))}") from None
