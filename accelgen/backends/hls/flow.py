"""`compile(graph, target="hls", ...)`: quantize if needed, check the graph and options, write the project."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from accelgen.backends.hls.cpp import identifier
from accelgen.backends.hls.estimate import write_project_report
from accelgen.backends.hls.generate import ProjectWriter, prepare_folder, write_files
from accelgen.backends.hls.layers import check_supported, value_type
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
            calibration=None, csim: bool = False, per_channel: bool = False, **options) -> HlsProject:
    """Write an HLS project for `graph` into `out_dir` and return it (its C simulation built when csim=True).

    A float graph is optimized and quantized first: precision "auto" (the default) or a uniform "fixed<W,I>",
    with the ranges from `calibration` (a dict of input samples or a .npz path), which is required. A graph
    quantized by accelgen.quantize is used as it is (precision and calibration then only feed tb_data).
    per_channel: per-output-channel weight scales for Dense and Conv (see accelgen.quantize).
    Options: part, clock_ns, reuse_factor, strategy ("latency" | "resource"; resource when only a reuse factor
    above 1 is given), io ("parallel" | "stream"), config (per-layer strategy, reuse factor and precision).
    """
    import accelgen

    if target != "hls":
        raise OptionError(f"the HLS backend compiles for target 'hls', not {target!r}")
    opts = parse_options(**options)
    path = prepare_folder(out_dir, force)
    data = _calibration_data(calibration, graph)
    if _is_quantized(graph):
        if precision is not None or per_channel:
            raise OptionError("the graph is already quantized; drop --precision and --per-channel (or pass the float "
                              "graph)")
        q = graph
    else:
        optimized = accelgen.optimize(graph)
        check_supported(optimized)  # every missing op at once, before calibration runs
        if data is None:
            raise OptionError("a float model needs calibration data to choose its fixed-point types: pass "
                              "--calibration DATA.npz (calibration={input: samples}); --precision fixed<W,I> alone "
                              "is not enough, since quantization also sizes accumulators and tables from ranges")
        q = accelgen.quantize(optimized, data, precision or "auto", overrides=opts.precision_overrides or None,
                              per_channel=per_channel)
    check_supported(q)
    top = identifier(q.name).lower() or "model"
    top = top if top not in ("main", "ag") else f"{top}_top"
    writer = ProjectWriter(q, opts, top)
    _check_config_keys(q, opts)
    layers = writer.build_layers()
    _check_layer_reuse(q, layers, opts)
    _check_fits(layers, opts, q.nodes)
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
        "widest_type_bits": writer.widest_type_bits,  # whether the fast C-sim types can build it
    }
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, {**writer.files, **writer.binary}, manifest)
    write_project_report(path, q, opts)  # report/estimate.{json,md,html}: the estimator's view of this design
    project = HlsProject(path, manifest)
    if csim:
        project.build_csim()
    return project


def _check_config_keys(q: Graph, opts) -> None:
    """A per-layer setting that names no node or op type of the graph is a typo, not a no-op."""
    known = {n.name for n in q.nodes} | {n.op_type for n in q.nodes}
    unknown = sorted(k for k in opts.per_layer if k not in known)
    if unknown:
        raise OptionError(f"config names {unknown} match no layer; use node names or op types of the quantized "
                          f"graph: {', '.join(sorted(known))}")


def _check_layer_reuse(q: Graph, layers, opts) -> None:
    """A reuse factor that a config entry sets for a layer whose kernel has none would be silently ignored."""
    for node, layer in zip(q.nodes, layers):
        given = {**opts.per_layer.get(node.op_type, {}), **opts.per_layer.get(node.name, {})}
        uses_reuse = any(name == "reuse_factor" for _, name, _ in layer.config)
        if given.get("reuse_factor", 1) > 1 and opts.choice_for(node).reuse_factor > 1 and not uses_reuse:
            raise OptionError(f"config gives layer {node.name!r} ({node.op_type}) reuse factor "
                              f"{given['reuse_factor']}, but its HLS kernel has no reuse factor in this version "
                              "(Dense, MultiHeadAttention and Conv with group 1 with strategy resource have)")


def _check_fits(layers, opts, nodes) -> None:
    """A layer's kernel needs its multipliers at once (all of them fully unrolled, n_in*n_out/R with a reuse
    factor): refuse a layer that alone needs more than the part's DSPs, with what to change. Products with an
    operand of 4 bits or fewer (binary and ternary weights, 2-bit activations) are LUT logic, not DSPs."""
    part = opts.part
    for layer, node in zip(layers, nodes):
        if layer.multipliers <= part.dsp or _lut_products(node):
            continue
        sizes = {name: value for kind, name, value in layer.config if kind in ("int", "unsigned")}
        if layer.op_type == "Dense" or (layer.op_type in ("Conv", "FusedConv") and sizes["groups"] == 1):
            products = (sizes["n_in"] * sizes["n_out"] if layer.op_type == "Dense"
                        else sizes["in_c"] * sizes["k_h"] * sizes["k_w"] * sizes["out_c"])
            reuse = -(-products // part.dsp)  # the smallest divisor of products at or above products / DSPs
            while products % reuse:
                reuse += 1
            advice = (f"use strategy resource with a reuse factor that divides {products} and leaves at most "
                      f"{part.dsp} multipliers, e.g. --strategy resource --reuse-factor {reuse}")
        elif layer.op_type == "MultiHeadAttention":
            advice = _attention_advice(sizes, part.dsp)
        else:
            advice = (f"its {layer.op_type} kernel shares no multipliers in this version (no reuse factor), so "
                      "choose a larger part or a smaller layer")
        raise OptionError(f"layer {layer.node_name!r} ({layer.op_type}) needs {layer.multipliers} multipliers in "
                          f"parallel but {part.name} has {part.dsp} DSPs; {advice}. (io stream moves tensors "
                          "through FIFOs but keeps each layer's multipliers.)")


LUT_PRODUCT_BITS = 4  # a product with an operand this narrow is a few LUTs (an AND, a negation), never a DSP


def _lut_products(node) -> bool:
    """Whether every product of a Dense or Conv layer has an operand of at most LUT_PRODUCT_BITS bits."""
    if node.op_type not in ("Dense", "Conv", "FusedConv"):
        return False
    return min(value_type(node.inputs[0]).width, value_type(node.inputs[1]).width) <= LUT_PRODUCT_BITS


def _attention_advice(sizes: dict, dsp: int) -> str:
    """The smallest reuse factor whose resource-strategy attention kernel fits `dsp` multipliers (its count
    falls as the reuse factor grows), or why none does."""
    from accelgen.backends.hls.layers import LayerChoice
    from accelgen.backends.hls.layers_transformer import AttentionShape

    shape = AttentionShape(*(sizes[k] for k in ("seq_q", "embed_q", "seq_kv", "embed_kv", "heads", "head_dim",
                                                "embed_out")))
    low, high = 1, max(shape.embed_q, shape.embed_kv, shape.embed_out, shape.seq_kv) * shape.width
    if shape.multipliers(LayerChoice("resource", high)) > dsp:
        return ("even its resource strategy at the largest reuse factor needs "
                f"{shape.multipliers(LayerChoice('resource', high))} multipliers, so choose a larger part")
    while low < high:
        mid = (low + high) // 2
        if shape.multipliers(LayerChoice("resource", mid)) <= dsp:
            high = mid
        else:
            low = mid + 1
    return (f"use strategy resource, whose attention kernel shares its multipliers by the reuse factor, e.g. "
            f"--strategy resource --reuse-factor {low} or larger")


def _quantized_samples(q: Graph, v, a: np.ndarray) -> np.ndarray:
    from accelgen.ir.fixed import quantize

    sample = tuple(v.shape[1:]) if v.shape and v.shape[0] == 1 else tuple(v.shape)
    a = a.reshape(-1, *sample) if a.size % max(int(np.prod(sample)), 1) == 0 else a
    if a.shape[1:] != sample:
        raise InputError(f"calibration samples of {v.name!r} have shape {a.shape}, not (N, {sample})")
    if not hasattr(v.dtype, "width"):  # an integer input (an attention mask): its values as they are
        return a.astype(v.dtype.np_dtype)
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
