"""Writing an HLS project: the layer contexts (layers.py) rendered through the jinja2 templates under
accelgen/templates/hls/, the kernel headers and ap_types headers copied, tb_data, the weights' binary files for the
C simulation and the manifest written. io parallel joins the layers by arrays in one function; io stream by FIFOs
between DATAFLOW processes (stream.py plans them).

Nothing is written outside `out_dir`. An existing, non-empty `out_dir` is refused unless `force`; with force only
the files we write (and those listed in the previous manifest, which we wrote before) are replaced or removed."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

import accelgen
from accelgen.backends.hls.aptypes import ap_types_dir
from accelgen.backends.hls.cpp import identifier, literal
from accelgen.backends.hls.estimate import pipelined_top
from accelgen.backends.hls.layers import Layer, LayerBuilder, value_type
from accelgen.backends.hls.options import HlsOptions
from accelgen.backends.hls.rows import ROW_COUNT, row_plan
from accelgen.backends.hls.stream import frame_size, plan_stream, port_stream
from accelgen.errors import OptionError
from accelgen.ir.graph import Graph

TEMPLATES = Path(accelgen.__file__).resolve().parent / "templates" / "hls"
KERNELS = TEMPLATES / "kernels"
STREAM_KERNELS = "ag_stream"  # kernel headers only io stream projects include (they pull in hls_stream.h)
STACK_MIB_MIN = 64  # the C simulation's thread stack: at least this, more for large designs (see _stack_mib)
UNSIGNED_CONFIG = {"tokens", "n_in", "n_out", "n_nonzero", "reuse_factor", "block_factor", "rows", "n"}
VALUES_PER_LINE = 8
# Names a tensor's C identifier must not take: C++ keywords and types, and the names the templates declare in the
# scopes where tensors live (top function, testbench, C-sim bridge). One- and two-letter names are avoided too.
RESERVED_NAMES = frozenset("""
    alignas alignof and asm auto bool break case catch char class const constexpr const_cast continue decltype
    default delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline int
    long mutable namespace new noexcept not nullptr operator or private protected public register reinterpret_cast
    return short signed sizeof static static_assert static_cast struct switch template this thread_local throw true
    try typedef typeid typename union unsigned using virtual void volatile wchar_t while xor size_t std ag hls main
    batch arg attr thread line fields inputs expected results samples mismatches file chunk whole done dir name
    n_in n_out
""".split())  # noqa: SIM905 - a word list reads better than 100 quoted strings
PARALLEL_DESIGN = (
    "io parallel: one function; the ports and every tensor between layers are arrays partitioned into registers. "
    "The top is one PIPELINE when every layer uses the latency strategy and none loops (one token, pixel or row), "
    "a DATAFLOW of the layer kernels, each pipelining its own loop, otherwise.")
STREAM_DESIGN = (
    "io stream: the ports are AXI streams of frames (a frame is a tensor's last dimension: a token's features, an "
    "image row) and every layer is a DATAFLOW process joined to the next by `hls::stream` FIFOs. Dense, LayerNorm, "
    "Softmax and same-shape elementwise layers run frame by frame: each iteration reads one frame of every input, "
    "runs the kernel on it and writes one frame, so they start on their producer's first frame; a self-attention "
    "takes its tokens as they arrive and writes each query's output as soon as it is done. Other layers read "
    "their whole input into a local array, run the kernel (the same as io parallel) and write their output to one "
    "FIFO per reader; a convolution or pooling fed by another layer reads pixel frames through a line buffer "
    "instead, computing each output row as soon as the input rows it needs have arrived. Each FIFO holds a whole "
    "tensor, so no process schedule can deadlock.")
MANIFEST = "manifest.json"
AP_WIDTH = re.compile(r"\bap_u?(?:fixed|int)<\s*(\d+)")  # the width of a C++ type spelling


@dataclass
class Port:
    cname: str
    original: str
    ctype: str
    size: int
    size_name: str
    shape: tuple
    decl: str  # the top function's parameter
    stream: str  # io stream: the hls::stream parameter's name
    frame_t: str
    frame: int

    @property
    def frames(self) -> int:
        return self.size // self.frame


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


class ProjectWriter:
    """Collects the files of a project in memory, then writes them."""

    def __init__(self, graph: Graph, options: HlsOptions, top: str):
        self.graph, self.options, self.top = graph, options, top
        self.files: dict[str, str] = {}
        self.binary: dict[str, bytes] = {}
        self.names = self._tensor_names()
        self.layers: list[Layer] = []

    def _tensor_names(self) -> dict[str, str]:
        names, taken = {}, set()
        for v in self.graph.values():
            base = identifier(v.name)
            if base in RESERVED_NAMES or len(base) <= 2:  # C++ keywords, the templates' locals (s, i, batch...)
                base = f"tensor_{base}"
            name, i = base, 1
            while name in taken or name == self.top:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            names[v.name] = name
        return names

    def _port(self, v, is_input: bool) -> Port:
        cname = self.names[v.name]
        size_name = f"N_{cname.upper()}"
        stream, frame_t = port_stream(cname), f"{cname}_frame_t"
        if self.options.io == "stream":
            decl = f"hls::stream<{frame_t}> &{stream}"
        else:
            decl = f"{'const ' if is_input else ''}{cname}_t {cname}[{size_name}]"
        return Port(cname, v.name, f"{cname}_t", v.type.numel, size_name, tuple(v.shape), decl, stream, frame_t,
                    frame_size(v))

    def build_layers(self) -> list[Layer]:
        builder = LayerBuilder(self.names)
        for index, node in enumerate(self.graph.nodes):
            layer = builder.build(index, node, self.options.choice_for(node))
            layer.config = [("unsigned" if kind == "int" and name in UNSIGNED_CONFIG else kind, name, value)
                            for kind, name, value in layer.config]
            self.layers.append(layer)
        return self.layers

    def row_plans(self) -> dict:
        """The io stream row plans (rows.py) of the graph's nodes, by node name."""
        plans = {node.name: row_plan(node, self.options.choice_for(node)) for node in self.graph.nodes}
        return {name: plan for name, plan in plans.items() if plan is not None}

    def render(self, tb_inputs: list[np.ndarray], tb_outputs: list[np.ndarray]) -> None:
        env = _environment()
        stream = self.options.io == "stream"
        inputs = [self._port(v, True) for v in self.graph.inputs]
        outputs = [self._port(v, False) for v in self.graph.outputs]
        tensor_types = [(f"{self.names[v.name]}_t", value_type(v).cpp(), v.name)
                        for v in self.graph.values() if not v.is_constant or self._is_tensor_constant(v)]
        ctypes = [c for _, c, _ in tensor_types] + [c for layer in self.layers for _, c in layer.typedefs]
        self.widest_type_bits = max((int(w) for c in ctypes for w in AP_WIDTH.findall(c)), default=0)
        kernel_headers = sorted(p.name for p in KERNELS.glob("*.h")
                                if stream or not p.name.startswith(STREAM_KERNELS))
        weight_arrays = [{"name": a.name, "ctype": a.ctype, "size": len(a.values)}
                         for layer in self.layers for a in layer.arrays]
        common = {"top": self.top, "guard": self.top.upper(), "version": accelgen.__version__,
                  "graph_name": self.graph.name, "inputs": inputs, "outputs": outputs, "layers": self.layers,
                  "part": self.options.part.name, "clock_ns": self.options.clock_ns,
                  "strategy": self.options.strategy, "reuse_factor": self.options.reuse_factor,
                  "io": self.options.io, "stream": stream, "port_decls": [p.decl for p in inputs + outputs],
                  "call_args": [p.stream if stream else p.cname for p in inputs + outputs]}
        fw = "firmware"
        plan = plan_stream(self.graph, self.names, self.layers, self.row_plans()) if stream else None
        for stage in plan.stages if plan else []:
            if stage.rows:  # its kernel runs on one frame: the config counts one token (row)
                layer = next(layer for layer in self.layers if f"{layer.cname}_stage" == stage.name)
                layer.config = [(kind, name, 1 if name == ROW_COUNT.get(layer.op_type) else value)
                                for kind, name, value in layer.config]
        self.files[f"{fw}/defines.h"] = env.get_template("defines.h.j2").render(common, tensor_types=tensor_types)
        self.files[f"{fw}/parameters.h"] = env.get_template("parameters.h.j2").render(
            common, kernel_headers=kernel_headers)
        for layer in self.layers:
            arrays = [{"name": a.name, "ctype": a.ctype, "size": len(a.values), "lines": _lines(a.values)}
                      for a in layer.arrays]
            self.files[f"{fw}/weights/{layer.cname}.h"] = env.get_template("weights.h.j2").render(
                common, layer=layer, arrays=arrays)
            for a in layer.arrays:
                self.binary[f"{fw}/weights/{a.name}.bin"] = _float64_bytes(a.values)
        if stream:
            self.files[f"{fw}/{self.top}.h"] = env.get_template("top.h.j2").render(
                common, top_includes=["kernels/ag_stream.h"], frame_types=plan.frame_types)
            self.files[f"{fw}/{self.top}.cpp"] = env.get_template("top_stream.cpp.j2").render(
                common, stages=plan.stages, fifos=plan.fifos)
        else:
            ports = {p.original for p in inputs + outputs}
            buffers = [self._port(v, False) for node in self.graph.nodes for v in node.outputs
                       if v.name not in ports]
            top_pragmas = ["PIPELINE"] if pipelined_top(self.graph, self.options) else ["DATAFLOW"]
            self.files[f"{fw}/{self.top}.h"] = env.get_template("top.h.j2").render(
                common, top_includes=[], frame_types=[])
            self.files[f"{fw}/{self.top}.cpp"] = env.get_template("top.cpp.j2").render(
                common, buffers=buffers, top_pragmas=top_pragmas)
        for header in kernel_headers:
            self.files[f"{fw}/kernels/{header}"] = (KERNELS / header).read_text()
        self.files[f"tb/{self.top}_test.cpp"] = env.get_template("test.cpp.j2").render(common)
        self.files["tb/load_weights.h"] = env.get_template("load_weights.h.j2").render(
            common, weight_arrays=weight_arrays)
        self.files["csim/accelgen_csim.cpp"] = env.get_template("csim_bridge.cpp.j2").render(
            common, stack_mib=_stack_mib(self.graph))
        self.files["csim/ag_fast_types.h"] = (TEMPLATES / "csim" / "ag_fast_types.h").read_text()
        self.files["build_prj.tcl"] = env.get_template("build_prj.tcl.j2").render(common)
        n_tb = len(tb_inputs[0])
        rows = [{"index": layer.index, "node": layer.node_name, "op": layer.op_type, "kernel": layer.kernel,
                 "output": str(node.outputs[0].type)} for layer, node in zip(self.layers, self.graph.nodes)]
        self.files["README.md"] = env.get_template("README.md.j2").render(
            common, tb_samples=n_tb, layer_rows=rows, weights=sum(a["size"] for a in weight_arrays),
            design=STREAM_DESIGN if stream else PARALLEL_DESIGN)
        self.files["tb_data/tb_input_features.dat"] = _samples(tb_inputs)
        self.files["tb_data/tb_output_predictions.dat"] = _samples(tb_outputs)

    def _is_tensor_constant(self, v) -> bool:
        """Constants that are tensors of the design (Add operands), not weights of a layer."""
        return any(u.op_type == "Add" for u in v.users)


def _lines(values) -> list[str]:
    strings = list(values)
    return [", ".join(strings[i:i + VALUES_PER_LINE]) + ("," if i + VALUES_PER_LINE < len(strings) else "")
            for i in range(0, len(strings), VALUES_PER_LINE)]


def _float64_bytes(values) -> bytes:
    """The values of a constant array as the little-endian float64 file tb/load_weights.h reads (exact: every
    value is a fixed-point number of <= 53 bits)."""
    data = getattr(values, "data", None)  # cpp.Literals keeps the numbers; index arrays are parsed back
    data = np.asarray(values, np.float64) if data is None else data
    return np.ascontiguousarray(data, "<f8").tobytes()


def _stack_mib(graph: Graph) -> int:
    """The C simulation keeps the design's arrays on the stack (the top's buffers, each process's locals, the
    kernels' internals): allow 64 bytes per value of every tensor, which covers the widest ap_fixed types."""
    values = sum(v.type.numel for v in graph.values() if not v.is_constant)
    return max(STACK_MIB_MIN, (64 * values >> 20) + STACK_MIB_MIN)


def _samples(arrays: list[np.ndarray]) -> str:
    """One line per sample: every port's values flattened, in port order, as exact literals."""
    n = len(arrays[0])
    flat = [a.reshape(n, -1) for a in arrays]
    return "".join(" ".join(literal(v) for part in flat for v in part[i]) + "\n" for i in range(n))


def prepare_folder(out_dir, force: bool) -> Path:
    if out_dir is None:
        raise OptionError("out_dir is required: the folder to write the HLS project into")
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise OptionError(f"output path {str(path)!r} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OptionError(f"output folder {str(path)!r} already exists; pass --force (force=True) to replace the "
                          "files accelgen wrote there")
    return path


def write_files(path: Path, files: dict[str, str | bytes], manifest: dict) -> None:
    old = path / MANIFEST
    if old.is_file():  # files of a previous generation that this one does not write again
        try:
            previous = json.loads(old.read_text()).get("files", [])
        except (ValueError, AttributeError):
            previous = []
        for rel in previous:
            target = (path / rel).resolve()
            if rel not in files and path.resolve() in target.parents and target.is_file():
                target.unlink()
    aptypes = ap_types_dir()
    copied = [p for p in sorted(aptypes.rglob("*")) if p.is_file()]
    written = sorted(files) + [f"ap_types/{p.relative_to(aptypes).as_posix()}" for p in copied]
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    for p in copied:
        target = path / "ap_types" / p.relative_to(aptypes)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
    (path / MANIFEST).write_text(json.dumps({**manifest, "files": written}, indent=2) + "\n")
