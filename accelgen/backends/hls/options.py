"""The HLS backend's options: checked once, with one clear error each, into a frozen value the generator reads.
Per-layer strategy and reuse factor come from `config` ({node name or op type: {"strategy": ..,
"reuse_factor": ..}}, a dict or a YAML file); its other keys are precision overrides for quantization.

The latency strategy is fully parallel: a reuse factor above 1 next to it (globally, or in one config entry) is
refused rather than silently ignored. Without a strategy, a reuse factor above 1 means resource (globally, and in a
config entry); otherwise latency. A layer that a config entry switches to latency uses reuse factor 1."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from accelgen.backends.hls.layers import LayerChoice
from accelgen.backends.hls.parts import Part, find_part
from accelgen.errors import OptionError

STRATEGIES = ("latency", "resource")
IO_TYPES = ("parallel", "stream")
LAYER_KEYS = ("strategy", "reuse_factor")
MEANINGLESS = {"tune_trials": "--tune-trials", "threads": "--threads"}  # tvm options


@dataclass(frozen=True)
class HlsOptions:
    part: Part
    clock_ns: float
    reuse_factor: int
    strategy: str
    io: str
    per_layer: dict = field(default_factory=dict)  # node name or op type -> {"strategy", "reuse_factor"}
    precision_overrides: dict = field(default_factory=dict)

    def choice_for(self, node) -> LayerChoice:
        given = {**self.per_layer.get(node.op_type, {}), **self.per_layer.get(node.name, {})}
        strategy = given.get("strategy", self.strategy)
        reuse = 1 if strategy == "latency" else given.get("reuse_factor", self.reuse_factor)
        return LayerChoice(strategy, reuse)

    def manifest(self) -> dict:
        return {"part": self.part.name, "clock_ns": self.clock_ns, "reuse_factor": self.reuse_factor,
                "strategy": self.strategy, "io": self.io, "per_layer": self.per_layer}


def _strategy(value, where: str) -> str:
    if value not in STRATEGIES:
        raise OptionError(f"{where}strategy must be one of {', '.join(STRATEGIES)}, got {value!r}")
    return value


def _reuse(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{where}reuse factor must be a positive integer, got {value!r}")
    return value


def _latency_without_reuse(strategy, reuse_factor: int, where: str) -> None:
    if strategy == "latency" and reuse_factor > 1:
        raise OptionError(f"{where}strategy latency is fully parallel and has no reuse factor (got {reuse_factor}); "
                          "use strategy resource to share multipliers")


def load_config(config) -> dict:
    if config is None:
        return {}
    if isinstance(config, (str, Path)):
        import yaml

        path = Path(config)
        if not path.is_file():
            raise OptionError(f"config file {str(path)!r} does not exist")
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise OptionError(f"config file {str(path)!r} is not valid YAML: {e}".splitlines()[0]) from None
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise OptionError("config must map node names or op types to settings, e.g. {'Dense': {'reuse_factor': 4}}")
    return config


def parse_options(part="xcvu13p-flga2577-2-e", clock_ns=5.0, reuse_factor=1, strategy=None, io="parallel",
                  config=None, **unknown) -> HlsOptions:
    for name in unknown:
        flag = MEANINGLESS.get(name, name)
        raise OptionError(f"option {flag} means nothing for the hls target")
    try:
        clock = float(clock_ns)
    except (TypeError, ValueError):
        clock = -1.0
    if not clock > 0:
        raise OptionError(f"clock period must be a positive number of ns, got {clock_ns!r}")
    if io not in IO_TYPES:
        raise OptionError(f"io must be one of {', '.join(IO_TYPES)}, got {io!r}")
    per_layer, overrides = {}, {}
    for key, settings in load_config(config).items():
        layer = {k: v for k, v in settings.items() if k in LAYER_KEYS}
        if "strategy" in layer:
            _strategy(layer["strategy"], f"config {key!r}: ")
        if "reuse_factor" in layer:
            _reuse(layer["reuse_factor"], f"config {key!r}: ")
            if layer["reuse_factor"] > 1 and "strategy" not in layer:
                layer["strategy"] = "resource"
        _latency_without_reuse(layer.get("strategy"), layer.get("reuse_factor", 1), f"config {key!r}: ")
        if layer:
            per_layer[key] = layer
        rest = {k: v for k, v in settings.items() if k not in LAYER_KEYS}
        if rest:
            overrides[key] = rest
    reuse_factor = _reuse(reuse_factor, "")
    strategy = _strategy(strategy if strategy is not None else ("resource" if reuse_factor > 1 else "latency"), "")
    _latency_without_reuse(strategy, reuse_factor, "")
    return HlsOptions(find_part(part), clock, reuse_factor, strategy, io, per_layer, overrides)
