"""`compile(graph, target="hls", ...)`: quantize if needed, check the graph and options, write the project."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from accelgen.backends.hls.cpp import identifier
from accelgen.backends.hls.generate import ProjectWriter, prepare_folder, write_files
from accelgen.backends.hls.layers import check_supported
from accelgen.backends.hls.options import parse_options
from accelgen.backends.hls.project import HlsProject
from accelgen.errors import InputError, OptionError, QuantizationError
from accelgen.ir.graph import Graph
from accelgen.ir.ops.quantized import Quantized

TB_SAMPLES = 10  # samples of the calibration data written to tb_data for the Vitis C simulation


def _is_quantized(graph: Graph) -> bool:
    kinds = [isinstance(n.op, Quantized) for n in graph.nodes]
    if any(kinds) and not all(kinds):
        raise QuantizationError("the graph is partly quantized; quantize the float graph with accelgen.quantize")
    return bool(kinds) and all(kinds)


def _calibration_data(calibration, graph: Graph) -> dict[str, np.ndarray] | None:
    if calibration is None:
        return None
    if isinstance(calibration, (str, Path)):
        path = Path(calibration)
        if not path.is_file():
            raise OptionError(f"calibration file {str(path)!r} does not exist")
        try:
            with np.load(path) as data:
                calibration = {k: data[k] for k in data.files}
        except (OSError, ValueError) as e:
            raise OptionError(f"calibration file {str(path)!r} is not a readable .npz: {e}") from None
    if not isinstance(calibration, Mapping):
        raise OptionError("calibration must be a dict of input name -> samples, or a .npz file path")
    names = [v.name for v in graph.inputs]
    missing = [n for n in names if n not in calibration]
    if missing:
        raise OptionError(f"calibration data lacks the model inputs {missing} (it has {sorted(calibration)})")
    return {n: np.asarray(calibration[n]) for n in names}


def compile(graph: Graph, target: str = "hls", out_dir=None, force: bool = False, *, precision=None,
            calibration=None, csim: bool = False, **options) -> HlsProject:
    """Write an HLS project for `graph` into `out_dir` and return it (its C simulation built when csim=True).

    A float graph is optimized and quantized first: precision "auto" (the default) or a uniform "fixed<W,I>",
    with the ranges from `calibration` (a dict of input samples or a .npz path), which is required. A graph
    quantized by accelgen.quantize is used as it is (precision and calibration then only feed tb_data).
    Options: part, clock_ns, reuse_factor, strategy ("latency" | "resource"), io ("parallel"), config.
    """
    import accelgen

    if target != "hls":
        raise OptionError(f"the HLS backend compiles for target 'hls', not {target!r}")
    opts = parse_options(**options)
    path = prepare_folder(out_dir, force)
    data = _calibration_data(calibration, graph)
    if _is_quantized(graph):
        if precision is not None:
            raise OptionError("the graph is already quantized; drop --precision (or pass the float graph)")
        q = graph
    else:
        optimized = accelgen.optimize(graph)
        check_supported(optimized)  # every missing op at once, before calibration runs
        if data is None:
            raise OptionError("a float model needs calibration data to choose its fixed-point types: pass "
                              "--calibration DATA.npz (calibration={input: samples}); --precision fixed<W,I> alone "
                              "is not enough, since quantization also sizes accumulators and tables from ranges")
        q = accelgen.quantize(optimized, data, precision or "auto", overrides=opts.precision_overrides or None)
    check_supported(q)
    top = identifier(q.name).lower() or "model"
    top = top if top not in ("main", "ag") else f"{top}_top"
    writer = ProjectWriter(q, opts, top)
    layers = writer.build_layers()
    _check_fits(layers, opts)
    if data is not None:
        tb_in = [np.asarray(data[v.name][:TB_SAMPLES], np.float64) for v in q.inputs]
    else:  # no samples given: one all-zero sample keeps the Vitis C simulation runnable
        tb_in = [np.zeros((1, *v.shape[1:]) if v.shape and v.shape[0] == 1 else (1, *v.shape)) for v in q.inputs]
    tb_in = [_quantized_samples(q, v, a) for v, a in zip(q.inputs, tb_in)]
    tb_out = _reference(q, tb_in)
    writer.render(tb_in, tb_out)
    manifest = {
        "generator": f"accelgen {accelgen.__version__}", "top": top, "graph": q.name,
        "options": opts.manifest(), "part": vars(opts.part),
        "inputs": [{"name": v.name, "shape": list(v.shape), "type": str(v.dtype)} for v in q.inputs],
        "outputs": [{"name": v.name, "shape": list(v.shape), "type": str(v.dtype)} for v in q.outputs],
        "layers": [{"index": layer.index, "node": layer.node_name, "op": layer.op_type, "kernel": layer.kernel,
                    "multipliers": layer.multipliers} for layer in layers],
        "multipliers": sum(layer.multipliers for layer in layers),
    }
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, writer.files, manifest)
    project = HlsProject(path, manifest)
    if csim:
        project.build_csim()
    return project


def _check_fits(layers, opts) -> None:
    """A fully parallel layer needs one multiplier per nonzero weight at once; refuse what no DSP budget holds."""
    for layer in layers:
        if layer.multipliers > opts.part.dsp:
            raise OptionError(f"layer {layer.node_name!r} ({layer.op_type}) needs {layer.multipliers} multipliers in "
                              f"parallel but {opts.part.name} has {opts.part.dsp} DSPs; raise the reuse factor with "
                              "strategy resource (or use io stream when available)")


def _quantized_samples(q: Graph, v, a: np.ndarray) -> np.ndarray:
    from accelgen.ir.fixed import quantize

    sample = tuple(v.shape[1:]) if v.shape and v.shape[0] == 1 else tuple(v.shape)
    a = a.reshape(-1, *sample) if a.size % max(int(np.prod(sample)), 1) == 0 else a
    if a.shape[1:] != sample:
        raise InputError(f"calibration samples of {v.name!r} have shape {a.shape}, not (N, {sample})")
    return quantize(v.dtype, a)[0]


def _reference(q: Graph, tb_in: list[np.ndarray]) -> list[np.ndarray]:
    """accelgen's fixed-point interpreter on the testbench samples, one at a time (batch 1 as the graph)."""
    import accelgen

    outs = [[] for _ in q.outputs]
    for i in range(len(tb_in[0])):
        feeds = {v.name: a[i].reshape(v.shape) for v, a in zip(q.inputs, tb_in)}
        result = accelgen.run(q, feeds)
        for k, v in enumerate(q.outputs):
            outs[k].append(np.asarray(result[v.name], np.float64).reshape(-1))
    return [np.stack(o) for o in outs]
