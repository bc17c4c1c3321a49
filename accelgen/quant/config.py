"""Per-layer precision configuration from a YAML/JSON file or a dict, in accelgen's own form or hls4ml's.

accelgen's form maps node names and op types to settings:

    Dense: {width: 12}                      # every Dense output: 12 bits, integer bits from calibration
    /net/net.0/Gemm_0_0:
      type: fixed<18,8>                     # this node's output type, fixed
    /net/net.6/Gemm_0: {weight_bits: 6}     # its weights and bias: 6 bits, integer bits from their data
    Conv: {weight_type: 'fixed<8,2>', per_channel: true}  # inside {...} quote types: YAML splits at commas

hls4ml's form is recognised by its top-level keys and mapped onto the same settings:

    Model:
      Precision: fixed<16,6>                # -> precision="fixed<16,6>" (uniform)
    LayerName:
      fc1:
        Precision: {result: 'fixed<12,4>', weight: 'fixed<8,2>'}
    LayerType:
      Dense:
        Precision: fixed<10,4>

Settings accelgen decides better itself are ignored and listed in `LayerConfig.ignored` (never silently):
accumulators are exact by construction, tables are sized from the calibrated range, and non-precision options
(ReuseFactor, Strategy...) belong to the HLS backend.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from accelgen.errors import QuantizationError
from accelgen.ir.types import FixedType

SETTINGS = ("width", "type", "weight_bits", "weight_type", "per_channel")
MAX_WIDTH = 32  # as QuantConfig's widths
HLS4ML_KEYS = ("Model", "LayerName", "LayerType")
# hls4ml layer classes -> the accelgen op types they become (a Dense is a Gemm/MatMul before `optimize` fuses it).
HLS4ML_TYPES = {"Dense": ("Dense", "Gemm", "MatMul"), "Conv1D": ("FusedConv", "Conv"),
                "Conv2D": ("FusedConv", "Conv"), "Activation": ("Relu", "Sigmoid", "Tanh"),
                "BatchNormalization": ("BatchNormalization",)}
# hls4ml precision entries accelgen does not take from the user, and why.
_DECIDED = {"accum": "accumulators are exact (their width follows from the operands and fan-in)",
            "table": "tables are sized from the calibrated range", "exp_table": "tables are sized from the calibrated "
            "range", "inv_table": "tables are sized from the calibrated range", "maximum": "no maximum applies"}


@dataclass
class LayerConfig:
    """A loaded configuration: `overrides` for accelgen.quantize, `precision` when the file sets a model-wide
    type (hls4ml's Model Precision), and the settings that were ignored, with the reason."""

    overrides: dict[str, dict] = field(default_factory=dict)
    precision: str | None = None
    ignored: list[str] = field(default_factory=list)

    def kwargs(self) -> dict:
        """Keyword arguments for accelgen.quantize."""
        return {"overrides": self.overrides, **({"precision": self.precision} if self.precision else {})}


def load_config(source, graph=None) -> LayerConfig:
    """Read `source` (a dict, or the path of a .yaml/.yml/.json file) and validate it. With `graph`, every key
    must name one of its nodes or an op type accelgen knows."""
    data = read(source)
    config = _from_hls4ml(data) if _is_hls4ml(data) else LayerConfig({k: _settings(k, v) for k, v in data.items()})
    if graph is not None:
        check_keys(config.overrides, graph)
    return config


def load_overrides(source, graph=None) -> dict[str, dict]:
    """Just the per-layer overrides (an error if the file also sets a model-wide precision, which they cannot
    express: use load_config)."""
    config = load_config(source, graph)
    if config.precision is not None:
        raise QuantizationError(f"the configuration sets a model-wide precision ({config.precision}); "
                                "use load_config(...).kwargs() to get it along with the overrides")
    return config.overrides


def read(source) -> dict:
    if isinstance(source, Mapping):
        data = source
    elif isinstance(source, (str, Path)):
        data = _read_file(Path(source))
    else:
        raise QuantizationError(f"a precision configuration is a dict or a YAML/JSON file path, got "
                                f"{type(source).__name__}")
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise QuantizationError(f"a precision configuration maps layer names or op types to settings; got a "
                                f"{type(data).__name__}")
    return dict(data)


def _read_file(path: Path):
    try:
        text = path.read_text()
    except OSError as e:
        raise QuantizationError(f"cannot read the configuration {str(path)!r}: {e.strerror or e}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise QuantizationError(f"{str(path)!r} is not valid JSON: {e}") from None
    import yaml  # PyYAML: a dependency of hls4ml, imported only when a YAML file is read

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise QuantizationError(f"{str(path)!r} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None


def parse_precision(text, where: str) -> str:
    """A fixed-point type string, canonical (`ap_fixed<8,3>` -> `fixed<8,3>`); hls4ml's int<N> and uint<N> are
    fixed<N,N> and ufixed<N,N>."""
    if isinstance(text, FixedType):
        return str(text)
    if not isinstance(text, str):
        raise QuantizationError(f"{where}: expected a fixed-point type such as fixed<16,6>, got {text!r}")
    if "<" in text and ">" not in text:  # YAML's {a: b, c: d} splits fixed<16,6> at the comma
        raise QuantizationError(f"{where}: {text!r} is cut short; in YAML flow style {{...}} quote types that "
                                "contain commas: {type: 'fixed<16,6>'}")
    m = re.fullmatch(r"(?:ap_)?(u?)int<\s*(\d+)\s*>", text.strip())
    if m:
        text = f"{m.group(1)}fixed<{m.group(2)},{m.group(2)}>"
    try:
        return str(FixedType.parse(text))
    except ValueError as e:
        raise QuantizationError(f"{where}: {e}") from None


def _width(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_WIDTH:
        raise QuantizationError(f"{where}: expected an integer number of bits in 2..{MAX_WIDTH}, got {value!r}")
    return value


def _settings(key, value) -> dict:
    """Validate one accelgen-form entry."""
    if not isinstance(key, str) or not key:
        raise QuantizationError(f"configuration key {key!r}: expected a node name or an op type (a string)")
    if not isinstance(value, Mapping):
        raise QuantizationError(f"configuration {key!r}: expected settings such as {{width: 12}} or "
                                f"{{type: fixed<16,6>}}, got {value!r}")
    unknown = [k for k in value if k not in SETTINGS]
    for name in ("type", "weight_type"):
        if name in value:
            parse_precision(value[name], f"configuration {key!r} {name}")  # a cut-short type says why first
    if unknown:
        hint = " (an hls4ml Precision belongs under LayerName or LayerType)" if "Precision" in unknown else ""
        raise QuantizationError(f"configuration {key!r}: unknown setting {unknown[0]!r}; the settings are "
                                f"{', '.join(SETTINGS)}{hint}")
    out = {}
    for name, v in value.items():
        where = f"configuration {key!r} {name}"
        if name == "per_channel":
            if not isinstance(v, bool):
                raise QuantizationError(f"{where}: expected true or false, got {v!r}")
            out[name] = v
        else:
            out[name] = _width(v, where) if name in ("width", "weight_bits") else parse_precision(v, where)
    for a, b in (("width", "type"), ("weight_bits", "weight_type")):
        if a in out and b in out:
            raise QuantizationError(f"configuration {key!r}: give {a} or {b}, not both ({b} fixes the width)")
    return out


def check_keys(overrides: Mapping[str, Mapping], graph) -> None:
    """Every key is a node name of `graph` or an op type accelgen knows; a typo is an error, with suggestions."""
    from accelgen.ir.ops import REGISTRY

    nodes = [n.name for n in graph.nodes]
    known = set(nodes) | {n.op_type for n in graph.nodes} | {op for _, op in REGISTRY}
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, nodes + sorted({n.op_type for n in graph.nodes}), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else \
                f"; its nodes are {', '.join(map(repr, nodes[:6]))}{', ...' if len(nodes) > 6 else ''}"
            raise QuantizationError(f"configuration key {key!r} is neither a node nor an op type of the graph{hint}")


# -- hls4ml ---------------------------------------------------------------------------------------------------------
def _is_hls4ml(data: Mapping) -> bool:
    """hls4ml's form: a Model/LayerName/LayerType key whose value is not accelgen settings."""
    return any(k in data and not (isinstance(data[k], Mapping) and set(data[k]) <= set(SETTINGS))
               for k in HLS4ML_KEYS)


def _from_hls4ml(data: Mapping) -> LayerConfig:
    config = LayerConfig()
    for key in data:
        if key not in HLS4ML_KEYS:
            raise QuantizationError(f"hls4ml configuration: unknown top-level key {key!r}; expected "
                                    f"{', '.join(HLS4ML_KEYS)} (accelgen's own form cannot be mixed in)")
    model = data.get("Model") or {}
    if not isinstance(model, Mapping):
        raise QuantizationError(f"hls4ml configuration Model: expected a mapping, got {model!r}")
    for name, value in model.items():
        if name != "Precision":
            config.ignored.append(f"Model {name}: not a precision setting")
            continue
        settings = _hls4ml_precision(value, "Model Precision", config.ignored)
        if "weight_type" in settings and settings.get("type") != settings["weight_type"]:
            raise QuantizationError("hls4ml configuration Model Precision: a model-wide precision is one type; "
                                    "give weight types per layer (LayerName/LayerType)")
        config.precision = settings.get("type")
    for section, expand in (("LayerType", lambda k: HLS4ML_TYPES.get(k, (k,))), ("LayerName", lambda k: (k,))):
        layers = data.get(section) or {}
        if not isinstance(layers, Mapping):
            raise QuantizationError(f"hls4ml configuration {section}: expected a mapping of layers, got {layers!r}")
        for layer, layer_config in layers.items():
            if not isinstance(layer, str) or not isinstance(layer_config, Mapping):
                raise QuantizationError(f"hls4ml configuration {section} {layer!r}: expected a mapping such as "
                                        f"{{Precision: fixed<16,6>}}, got {layer_config!r}")
            for name in layer_config:
                if name != "Precision":
                    config.ignored.append(f"{section} {layer} {name}: not a precision setting")
            if "Precision" not in layer_config:
                continue
            settings = _hls4ml_precision(layer_config["Precision"], f"{section} {layer!r} Precision", config.ignored)
            if settings:
                for key in expand(layer):  # LayerName after LayerType: a layer's own setting wins
                    config.overrides[key] = {**config.overrides.get(key, {}), **settings}
    return config


def _hls4ml_precision(value, where: str, ignored: list) -> dict:
    """One hls4ml Precision (a type, or {default, result, weight, bias, accum, ...}) as accelgen settings; 'auto'
    leaves the choice to accelgen's inference."""
    if not isinstance(value, Mapping):
        value = {"default": value}
    types = {}
    for name, text in value.items():
        if text == "auto":
            continue
        if name in _DECIDED:
            ignored.append(f"{where} {name}: {_DECIDED[name]}")
        elif name in ("default", "result", "weight", "bias"):
            types[name] = parse_precision(text, f"{where} {name}")
        else:
            ignored.append(f"{where} {name}: not a precision accelgen sets per layer")
    if "weight" in types and "bias" in types and types["weight"] != types["bias"]:
        raise QuantizationError(f"{where}: accelgen gives a layer's weights and bias one type; weight "
                                f"{types['weight']} and bias {types['bias']} differ")
    default = types.get("default")
    out = {}
    if types.get("result", default):
        out["type"] = types.get("result", default)
    weight = types.get("weight", types.get("bias", default))
    if weight:
        out["weight_type"] = weight
    return out
