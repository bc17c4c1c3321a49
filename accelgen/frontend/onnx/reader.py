"""Reading an ONNX file safely: clear errors for missing, truncated or malformed files; external data only from
inside the model's own folder; the checker made tolerant of QONNX exports that forget their domain's opset."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from accelgen.errors import ModelLoadError
from accelgen.ir.ops.registry import DOMAIN_ALIASES

_CHECKER_LIMIT = 2**31 - 1  # protobuf's serialisation limit; larger models skip the in-memory checker


def read_model(model) -> onnx.ModelProto:
    """A ModelProto from a path, bytes or ModelProto, with external data loaded and checked."""
    if isinstance(model, onnx.ModelProto):
        proto, base = model, None
    elif isinstance(model, (bytes, bytearray)):
        proto, base = _parse(bytes(model), "<bytes>"), None
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(f"no such file: {path}")
        if path.is_dir():
            raise ModelLoadError(f"{path} is a folder, not an ONNX file")
        proto, base = _parse(path.read_bytes(), str(path)), path.resolve().parent
    else:
        raise ModelLoadError(f"expected a path or an onnx.ModelProto, got {type(model).__name__}")
    _load_external_data(proto, base)
    _check(proto)
    return proto


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{where} is not a valid ONNX model (truncated or not ONNX): {e}") from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelLoadError(f"{where} is not an ONNX model: it has no graph or no opset_import")
    return proto


def _external_tensors(proto: onnx.ModelProto):
    return [t for t in external_data_helper._get_all_tensors(proto) if external_data_helper.uses_external_data(t)]


def _load_external_data(proto: onnx.ModelProto, base: Path | None) -> None:
    tensors = _external_tensors(proto)
    if not tensors:
        return
    if base is None:
        raise ModelLoadError("the model keeps weights in external data files; load it from its path so they can be found")
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        rel = Path(location)
        if not location or rel.is_absolute() or ".." in rel.parts:
            raise ModelLoadError(f"tensor {t.name!r}: external data location {location!r} must be a relative path "
                                 "inside the model's folder")
        target = (base / rel).resolve()
        if not target.is_relative_to(base):
            raise ModelLoadError(f"tensor {t.name!r}: external data {location!r} resolves outside the model's folder")
        if not target.is_file():
            raise ModelLoadError(f"tensor {t.name!r}: external data file {location!r} not found next to the model")
    try:
        external_data_helper.load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"reading external data failed: {e}") from None


def _check(proto: onnx.ModelProto) -> None:
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
        first = str(e).strip().splitlines()[0]
        raise ModelLoadError(f"the ONNX checker rejects the model: {first}") from None
