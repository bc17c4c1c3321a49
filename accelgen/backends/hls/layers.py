"""One small context per node: everything the templates print (typedefs, config constants, constant arrays, the
kernel call), with every decision made here in Python. The templates only substitute and loop.

Tensors are flat C arrays in the graph's row-major layout (NCHW for images, batch 1). Each kernel reproduces the
node's fixed-point meaning (the wrapped op's `compute_fixed` followed by the rounding to the node's output type):
exact arithmetic in ap_fixed types wide enough to lose nothing, and an assignment to a named type wherever the
Python side rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from accelgen.backends.hls.cpp import (
    exact_literals,
    exact_type,
    holds_exactly,
    identifier,
    integer_type,
    literal,
)
from accelgen.backends.hls.layers_elementwise import ELEMENTWISE_OPS, ElementwiseKernels
from accelgen.backends.hls.layers_math import MATH_OPS, MathKernels
from accelgen.backends.hls.layers_quant import QUANTIZER_OPS, QuantKernels
from accelgen.backends.hls.layers_transformer import TRANSFORMER_OPS, TransformerKernels
from accelgen.errors import OptionError, QuantizationError, UnsupportedOpsError
from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.activations import _Tabled
from accelgen.ir.ops.conv import Geometry
from accelgen.ir.ops.fixed_math import Rescale, product_type, sum_type
from accelgen.ir.ops.quantized import LookupTable
from accelgen.ir.types import BoolType, FixedType, IntType, Overflow, Rounding

COPIES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast")
SUPPORTED = ("Dense", "FusedConv", "Conv", "MaxPool", "AveragePool", "Relu", "Softmax") + COPIES + ELEMENTWISE_OPS + \
    TRANSFORMER_OPS + QUANTIZER_OPS + MATH_OPS


@dataclass
class ConstArray:
    name: str
    ctype: str  # element type (a typedef name or a C integer type)
    values: list[str]


@dataclass
class Layer:
    """What the templates print for one node."""

    index: int
    node_name: str
    op_type: str
    cname: str
    kernel: str  # short description for the README / summary
    typedefs: list[tuple[str, str]] = field(default_factory=list)  # (name, C++ type)
    config: list[tuple[str, str, object]] = field(default_factory=list)  # ("int"|"type", name, value)
    arrays: list[ConstArray] = field(default_factory=list)
    scalars: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, literal)
    table: dict | None = None  # a table activation's struct (see ag::table_activation)
    call: str = ""
    multipliers: int = 0
    # io stream: the kernel that reads the input itself as pixel frames through a line buffer, and its arguments
    # after that stream (a convolution's or pooling's parallel form has one)
    line_buffer: tuple[str, list[str]] | None = None
    column: dict | None = None  # per-channel weights: the struct that reads a column's shift (ag::channel_scale)
    # io stream: the kernel that reads its one input FIFO and writes its one output FIFO itself, and its other
    # arguments (a self-attention's token-by-token form)
    stream_form: tuple[str, list[str]] | None = None
    kernel_note: str = ""  # appended to `kernel` once the builder is done

    @property
    def config_name(self) -> str:
        return f"config_{self.cname}"


@dataclass(frozen=True)
class LayerChoice:
    """Per-layer strategy and reuse factor (global options, overridden per node name or op type)."""

    strategy: str
    reuse_factor: int


@dataclass
class ResourceLanes:
    """The nonzero weights of a resource-strategy Dense laid out for ag::dense_resource_sparse: entry k = b*RF + r
    is lane (multiplier) b's product in cycle r. Entries are sorted by output, then input, so each lane's RF
    consecutive entries touch few outputs; the last lane is padded with zero weights."""

    w: np.ndarray
    rows: np.ndarray  # input index of each entry
    cols: np.ndarray  # output index of each entry
    nonzero: int
    block_factor: int  # lanes = multipliers


def sparse_resource(weights: np.ndarray, reuse_factor: int) -> bool:
    """Whether a resource-strategy Dense uses the sparse kernel: when at least a quarter of its weights are zero
    (each entry then also needs two 16-bit index ROM words, so a few stray zeros are not worth it), or when it has
    zeros and the reuse factor does not divide the dense product count (the sparse layout takes any RF)."""
    total, nonzero = weights.size, int(np.count_nonzero(weights))
    if nonzero == total:
        return False
    return 4 * nonzero <= 3 * total or total % reuse_factor != 0


def resource_lanes(weights: np.ndarray, reuse_factor: int) -> ResourceLanes:
    cols, rows = np.nonzero(weights.T)  # column-major: by output, then input
    nonzero = len(rows)
    block_factor = max(-(-nonzero // reuse_factor), 1)
    pad = block_factor * reuse_factor - nonzero
    last_col = int(cols[-1]) if nonzero else 0
    return ResourceLanes(np.concatenate([weights[rows, cols], np.zeros(pad)]),
                         np.concatenate([rows, np.zeros(pad, rows.dtype)]),
                         np.concatenate([cols, np.full(pad, last_col, cols.dtype)]), nonzero, block_factor)


def resource_tiles(n_in: int, n_out: int, block_factor: int) -> tuple[int, int]:
    """(tile_in, tile_out) of ag::dense_resource: each cycle multiplies a tile of tile_in inputs by tile_out outputs
    on block_factor = tile_in * tile_out multipliers. tile_out = gcd(block_factor, n_out) divides n_out, and tile_in
    divides n_in whenever block_factor divides n_in * n_out (lcm(block_factor, n_out) does), so the tiles cover the
    matrix exactly: one tile per output row when the multipliers outnumber the outputs (tile_out = n_out), one input
    a cycle when they are fewer (tile_in = 1), each accumulator always fed by the same multipliers."""
    tile_out = math.gcd(block_factor, n_out)
    return block_factor // tile_out, tile_out


def tile_order(weights: np.ndarray, tile_in: int, tile_out: int) -> np.ndarray:
    """The weights in ag::dense_resource's read order: tile r = u * (n_out / tile_out) + e (input tile u, output
    tile e), within it input a, then output o."""
    n_in, n_out = weights.shape
    tiles = weights.reshape(n_in // tile_in, tile_in, n_out // tile_out, tile_out)
    return tiles.transpose(0, 2, 1, 3).reshape(-1)


def window_sizes(x_shape, g: Geometry) -> dict[str, int]:
    """The spatial sizes ag::conv2d and ag::maxpool2d read, for a 1-D or 2-D window op on x [1, C, *spatial].
    A 1-D op ([1, C, L]) is the 2-D one on an image of height 1 with a kernel of height 1 (stride and dilation 1,
    no padding along it): [1, C, L] is [1, C, 1, L] in memory, and so are its weights and output, so the 2-D
    kernels (and the stream line buffer, with a ring of one row) compute it unchanged."""
    spatial = tuple(x_shape[2:])
    if len(spatial) == 1:
        spatial = (1, *spatial)
        g = Geometry((1, *g.kernel), (1, *g.strides), (1, *g.dilations), (0, *g.begin), (0, *g.end), (1, *g.out))
    return {"in_h": spatial[0], "in_w": spatial[1], "out_h": g.out[0], "out_w": g.out[1],
            "k_h": g.kernel[0], "k_w": g.kernel[1], "stride_h": g.strides[0], "stride_w": g.strides[1],
            "dilation_h": g.dilations[0], "dilation_w": g.dilations[1], "pad_top": g.begin[0], "pad_left": g.begin[1]}


def conv_sizes(node: Node, conv) -> dict[str, int]:
    """ag::conv2d's sizes for a Conv (or FusedConv's conv) node: 1-D or 2-D, batch 1, any group. A grouped
    convolution keeps its weights as ONNX stores them, [out_c, group_in_c, k...]: output channel m reads only the
    group_in_c input channels of its own group, so every multiplier is a real product (no zero weights standing
    for the other groups' channels). Depthwise (groups = in_c) has group_in_c = 1: k_h * k_w products per output
    channel and pixel."""
    x_shape, w_shape = node.inputs[0].shape, node.inputs[1].shape
    if len(x_shape) not in (3, 4) or x_shape[0] != 1:
        raise OptionError(f"{node.name}: only 1-D and 2-D convolutions with batch 1 have an HLS kernel in this "
                          f"version (input {x_shape})")
    groups = conv.group
    return {"in_c": x_shape[1], "out_c": w_shape[0], "groups": groups, "group_in_c": x_shape[1] // groups,
            "group_out_c": w_shape[0] // groups, **window_sizes(x_shape, conv.geometry(x_shape[2:], w_shape[2:]))}


def conv_name(node: Node, conv) -> str:
    """conv1d / conv2d, with the grouping: "depthwise conv2d", "conv1d in 2 groups"."""
    name = f"conv{len(node.inputs[0].shape) - 2}d"
    if conv.group == 1:
        return name
    return f"depthwise {name}" if conv.group == node.inputs[0].shape[1] else f"{name} in {conv.group} groups"


def pool_sizes(node: Node, op) -> dict[str, int]:
    """ag::maxpool2d's sizes for a 1-D or 2-D MaxPool (batch 1, no indices output)."""
    shape = node.inputs[0].shape
    if len(shape) not in (3, 4) or shape[0] != 1 or op.with_indices:
        raise OptionError(f"{node.name}: only 1-D and 2-D MaxPool with batch 1 and no indices output has an HLS "
                          "kernel")
    return {"channels": shape[1], **window_sizes(shape, op.geometry(shape))}


def pool_name(node: Node, op) -> str:
    """The kernel's description: maxpool 2x2 (2-D), avgpool1d 3 (1-D)."""
    kernel = op.geometry(node.inputs[0].shape).kernel
    kind = "maxpool" if node.op_type == "MaxPool" else "avgpool"
    return f"{kind}{'1d' if len(kernel) == 1 else ''} {'x'.join(str(k) for k in kernel)}"


def avgpool_sizes(node: Node, op) -> dict[str, int]:
    """ag::avgpool2d's sizes for a 1-D or 2-D AveragePool (batch 1): ag::maxpool2d's, plus lim_h and lim_w, the
    end of the input the windows read. That is the input's end except where accelgen's AveragePool (as ORT) cuts
    a dilated pool's input short at a negative end padding (AveragePool._sums)."""
    shape = node.inputs[0].shape
    if len(shape) not in (3, 4) or shape[0] != 1:
        raise OptionError(f"{node.name}: only 1-D and 2-D AveragePool with batch 1 has an HLS kernel")
    g = op.geometry(shape)
    spatial = list(shape[2:])
    if any(d != 1 for d in g.dilations) and min(g.end) < 0:
        spatial = [n + min(e, 0) for n, e in zip(spatial, g.end)]
    sizes = {"channels": shape[1], **window_sizes(shape, g)}
    lim = [1, *spatial] if len(spatial) == 1 else spatial
    return {**sizes, "lim_h": lim[0], "lim_w": lim[1]}


def check_supported(graph: Graph) -> None:
    """All the ops this slice of the HLS backend lacks, with node names, in one error."""
    missing: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op_type not in SUPPORTED:
            missing.setdefault(node.op_type, []).append(node.name)
    if missing:
        raise UnsupportedOpsError(missing)


def value_type(v: Value) -> FixedType:
    """The fixed-point type of a tensor; integer and boolean tensors (a mask fed as int64) as the ap_fixed<W,W>
    that holds them exactly."""
    if isinstance(v.dtype, IntType):
        return FixedType(v.dtype.bits, v.dtype.bits, v.dtype.signed, Rounding.TRN, Overflow.WRAP)
    if isinstance(v.dtype, BoolType):
        return FixedType(1, 1, False, Rounding.TRN, Overflow.WRAP)
    if not isinstance(v.dtype, FixedType):
        raise QuantizationError(f"tensor {v.name!r} has type {v.dtype}, not fixed point: the HLS backend needs a "
                                "graph quantized by accelgen.quantize")
    return v.dtype


class LayerBuilder(ElementwiseKernels, TransformerKernels, QuantKernels, MathKernels):
    """Builds the Layer of each node; `tensor_names` maps graph values to their C names."""

    fixed_type = staticmethod(value_type)

    def __init__(self, tensor_names: dict[str, str]):
        self.tensor_names = tensor_names

    def build(self, index: int, node: Node, choice: LayerChoice) -> Layer:
        q = node.op
        op = getattr(q, "op", None)
        if op is None:
            raise QuantizationError(f"node {node.name!r} ({node.op_type}) is not quantized: every node must be "
                                    "wrapped by accelgen.quantize")
        layer = Layer(index, node.name, node.op_type, f"l{index}_{identifier(node.op_type).lower()}", "")
        method = getattr(self, f"_{node.op_type.lower()}", None)
        if node.op_type in COPIES:
            method = self._copy
        method(layer, node, q, op, choice)
        layer.kernel += layer.kernel_note
        return layer

    # -- helpers -----------------------------------------------------------------------------------------------
    def _x(self, node: Node, i: int = 0) -> str:
        return self.tensor_names[node.inputs[i].name]

    def _y(self, node: Node, i: int = 0) -> str:
        return self.tensor_names[node.outputs[i].name]

    @staticmethod
    def _const(layer: Layer, name: str, ctype: str, values: list[str]) -> None:
        layer.arrays.append(ConstArray(name, ctype, values))

    @staticmethod
    def _typedef(layer: Layer, suffix: str, t: FixedType) -> str:
        name = f"{layer.cname}_{suffix}_t"
        layer.typedefs.append((name, t.cpp()))
        return name

    def _activation(self, layer: Layer, node: Node, activation) -> str:
        if activation is None:
            return "ag::no_activation"
        if activation.op_type == "Relu":
            return "ag::relu_activation"
        if activation.op_type == "Clip":  # exact: clamps the accumulator, then the output rounding (ReLU6)
            layer.config += self.clip_members(layer, node.op.param("accum"), value_type(node.outputs[0]), activation)
            return f"ag::clip_activation<{layer.config_name}>"
        table = node.op.param("activation_table")
        if table is not None and activation.op_type == "Gelu":
            struct = self._table(layer, node.op.param("accum"), table)[len("ag::table_activation<"):-1]
            return f"ag::gelu_activation<{struct}>"
        if table is None or type(activation).lookup_fixed is not _Tabled.lookup_fixed:
            raise OptionError(f"{node.name}: fused activation {activation.op_type} has no HLS kernel in this "
                              "version (Relu, Clip, Gelu and plain table activations such as Sigmoid and Tanh)")
        return self._table(layer, node.op.param("accum"), table)

    def _table(self, layer: Layer, x: FixedType, table: LookupTable) -> str:
        """The struct ag::table_activation reads: floor(x * 2**frac_bits) in an integer type wide enough for
        every x, and the entries exactly as LookupTable.values."""
        fb = table.frac_bits
        floor_bits = max(x.integer + fb, 1) + 1
        offset = table.x_min * 2.0 ** fb
        if floor_bits > 62 or offset != int(offset):
            raise QuantizationError(f"{layer.node_name}: table {table} does not fit the HLS table kernel")
        name = f"table_{layer.cname}"
        values = self._typedef(layer, "table", table.out)
        layer.arrays.append(ConstArray(f"{layer.cname}_table", values,
                                       exact_literals(table.values, table.out, f"{layer.node_name} table")))
        layer.table = {"name": name, "description": str(table), "value_t": values,
                       "floor_t": self._typedef(layer, "floor", integer_type(floor_bits)),
                       "scale_t": self._typedef(layer, "scale", exact_type(1, fb + 1, False)),
                       "offset": int(offset), "size": table.size, "scale": literal(2.0 ** fb),
                       "array": f"{layer.cname}_table"}
        return f"ag::table_activation<{name}>"

    def _linear_types(self, layer: Layer, node: Node, q) -> tuple[FixedType, FixedType, FixedType | None]:
        x, w = value_type(node.inputs[0]), value_type(node.inputs[1])
        b = value_type(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        accum = q.param("accum")
        if not isinstance(accum, FixedType):
            raise QuantizationError(f"{node.name}: no accumulator type in its precision params")
        for part, t in (("x*w", product_type(x, w)), ("bias", b)):
            if t is not None and not holds_exactly(accum, t) and t.fractional > accum.fractional:
                raise QuantizationError(f"{node.name}: accumulator {accum} cannot hold {part} ({t}) exactly")
        return w, accum, b

    def _scale(self, layer: Layer, node: Node, q) -> None:
        """CONFIG::scale of a Dense or Conv: ag::tensor_scale, or for per-channel weights (QuantContext.
        per_channel_plan) ag::channel_scale with the column type and a struct reading the shifts k_n."""
        shifts = q.param("column_shifts")
        if shifts is None:
            layer.config.append(("type", "scale", "ag::tensor_scale"))
            return
        column = q.param("column_accum")
        if not isinstance(column, FixedType):
            raise QuantizationError(f"{node.name}: per-channel weights without a column accumulator type")
        array, struct = f"{layer.cname}_shifts", f"column_{layer.cname}"
        layer.arrays.append(ConstArray(array, "int", [str(int(k)) for k in shifts]))
        layer.column = {"name": struct, "array": array}
        layer.config.append(("type", "scale", f"ag::channel_scale<{self._typedef(layer, 'column', column)}, {struct}>"))
        layer.kernel_note = f", per-channel weights (shifts {min(shifts)}..{max(shifts)})"

    def _bias(self, layer: Layer, node: Node, b: FixedType | None, n: int) -> str:
        name = f"{layer.cname}_b"
        if b is None:
            layer.config.append(("type", "bias_t", "ap_uint<1>"))
            layer.arrays.append(ConstArray(name, "ap_uint<1>", ["0"] * n))
        else:
            tname = self._typedef(layer, "bias", b)
            layer.config.append(("type", "bias_t", tname))
            layer.arrays.append(ConstArray(name, tname, exact_literals(node.inputs[2].data, b, f"{node.name} bias")))
        return name

    # -- kernels -----------------------------------------------------------------------------------------------
    def _dense(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        w_type, accum, b_type = self._linear_types(layer, node, q)
        weights = np.asarray(node.inputs[1].data, np.float64)
        n_in, n_out = weights.shape
        tokens = node.inputs[0].type.numel // n_in
        wt = self._typedef(layer, "weight", w_type)
        at = self._typedef(layer, "accum", accum)
        layer.config += [("int", "tokens", tokens), ("int", "n_in", n_in), ("int", "n_out", n_out),
                         ("type", "weight_t", wt), ("type", "accum_t", at),
                         ("type", "activation", self._activation(layer, node, op.activation))]
        bias = self._bias(layer, node, b_type, n_out)
        self._scale(layer, node, q)
        x, y = self._x(node), self._y(node)
        if choice.strategy == "latency":
            rows, cols = np.nonzero(weights)
            if max(n_in, n_out) > 65535:
                raise OptionError(f"{node.name}: {n_in}x{n_out} is too large for the latency strategy; use "
                                  "strategy resource")
            layer.config.append(("int", "n_nonzero", max(len(rows), 1)))
            nz = weights[rows, cols]
            if len(rows) == 0:  # an all-zero layer still needs arrays of one element; its weight is 0
                rows, cols, nz = np.zeros(1, int), np.zeros(1, int), np.zeros(1)
            layer.arrays += [ConstArray(f"{layer.cname}_w", wt, exact_literals(nz, w_type, f"{node.name} weights")),
                             ConstArray(f"{layer.cname}_w_in", "unsigned short", [str(int(i)) for i in rows]),
                             ConstArray(f"{layer.cname}_w_out", "unsigned short", [str(int(j)) for j in cols])]
            layer.call = (f"ag::dense_latency<{layer.config_name}>({x}, {y}, {layer.cname}_w, {layer.cname}_w_in, "
                          f"{layer.cname}_w_out, {bias});")
            layer.multipliers = int(np.count_nonzero(weights)) if len(nz) else 0
            layer.kernel = f"dense latency, {layer.multipliers} multipliers (zeros skipped)"
        else:
            kernel, args = self._resource_products(layer, node, weights, w_type, wt, choice.reuse_factor)
            layer.call = f"ag::dense_{kernel}<{layer.config_name}>({x}, {y}, {args}, {bias});"
            layer.kernel = f"dense {layer.kernel}"

    def _resource_products(self, layer: Layer, node: Node, weights: np.ndarray, w_type: FixedType, wt: str,
                           rf: int) -> tuple[str, str]:
        """The time-multiplexed n_in x n_out product matrix `weights` of a resource-strategy Dense (or of a
        convolution's window and kernel): config, weight arrays, multipliers and description; returns the kernel
        form ("resource" or "resource_sparse") and its weight arguments."""
        n_in, n_out = weights.shape
        if sparse_resource(weights, rf):  # pruned: only the nonzero weights take turns
            lanes = resource_lanes(weights, rf)
            layer.config += [("int", "reuse_factor", rf), ("int", "block_factor", lanes.block_factor),
                             ("int", "n_nonzero", rf * lanes.block_factor)]
            layer.arrays += [ConstArray(f"{layer.cname}_w", wt,
                                        exact_literals(lanes.w, w_type, f"{node.name} weights")),
                             ConstArray(f"{layer.cname}_w_in", "unsigned short", [str(int(i)) for i in lanes.rows]),
                             ConstArray(f"{layer.cname}_w_out", "unsigned short", [str(int(j)) for j in lanes.cols])]
            layer.multipliers = lanes.block_factor
            layer.kernel = (f"resource sparse, reuse {rf}, {lanes.block_factor} multipliers for {lanes.nonzero} "
                            "nonzero weights")
            return "resource_sparse", f"{layer.cname}_w, {layer.cname}_w_in, {layer.cname}_w_out"
        total = n_in * n_out
        if total % rf:
            raise OptionError(f"{node.name}: reuse factor {rf} does not divide its {total} multiplications "
                              f"({n_in}x{n_out}); choose a divisor of {total}")
        block_factor = total // rf
        tile_in, tile_out = resource_tiles(n_in, n_out, block_factor)
        layer.config += [("int", "reuse_factor", rf), ("int", "block_factor", block_factor),
                         ("int", "tile_in", tile_in), ("int", "tile_out", tile_out)]
        layer.arrays.append(ConstArray(f"{layer.cname}_w", wt, exact_literals(
            tile_order(weights, tile_in, tile_out), w_type, f"{node.name} weights")))
        layer.multipliers = block_factor
        layer.kernel = f"resource, reuse {rf}, {block_factor} multipliers"
        return "resource", f"{layer.cname}_w"

    def _fusedconv(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        self._conv2d(layer, node, q, op.conv, op.activation, choice)

    def _conv(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        self._conv2d(layer, node, q, op, None, choice)

    def _conv2d(self, layer: Layer, node: Node, q, conv, activation, choice: LayerChoice) -> None:
        sizes = conv_sizes(node, conv)
        w_type, accum, b_type = self._linear_types(layer, node, q)
        w_shape = node.inputs[1].shape
        wt = self._typedef(layer, "weight", w_type)
        at = self._typedef(layer, "accum", accum)
        layer.config += [("int", name, value) for name, value in sizes.items()]
        layer.config += [("type", "weight_t", wt), ("type", "accum_t", at),
                         ("type", "activation", self._activation(layer, node, activation))]
        bias = self._bias(layer, node, b_type, w_shape[0])
        self._scale(layer, node, q)
        if choice.strategy == "resource" and conv.group == 1:  # the window x kernel matrix, shared multipliers
            weights = np.asarray(node.inputs[1].data, np.float64).reshape(w_shape[0], -1).T  # [n_in, out_c]
            layer.config += [("int", "tokens", 1), ("int", "n_in", weights.shape[0]), ("int", "n_out", w_shape[0])]
            kernel, args = self._resource_products(layer, node, weights, w_type, wt, choice.reuse_factor)
            layer.call = f"ag::conv2d_{kernel}<{layer.config_name}>({self._x(node)}, {self._y(node)}, {args}, {bias});"
            layer.kernel = f"{conv_name(node, conv)} {layer.kernel} per output pixel"
            return
        layer.arrays.append(ConstArray(f"{layer.cname}_w", wt,
                                       exact_literals(node.inputs[1].data, w_type, f"{node.name} weights")))
        layer.call = f"ag::conv2d<{layer.config_name}>({self._x(node)}, {self._y(node)}, {layer.cname}_w, {bias});"
        layer.line_buffer = ("conv2d_line_buffer", [self._y(node), f"{layer.cname}_w", bias])
        layer.multipliers = int(np.prod(w_shape))  # out_c * group_in_c * taps: the real products of one pixel
        layer.kernel = (f"{conv_name(node, conv)} parallel over output pixels, {layer.multipliers} multipliers per "
                        "pixel")

    def _maxpool(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        sizes = pool_sizes(node, op)
        for axis, pad in (("h", "pad_top"), ("w", "pad_left")):  # every window must see one real element
            for o in range(sizes[f"out_{axis}"]):  # (padding never wins, see the kernel)
                start = o * sizes[f"stride_{axis}"] - sizes[pad]
                taps = start + np.arange(sizes[f"k_{axis}"]) * sizes[f"dilation_{axis}"]
                if not np.any((taps >= 0) & (taps < sizes[f"in_{axis}"])):
                    raise OptionError(f"{node.name}: a pooling window lies entirely in the padding")
        layer.config += [("int", name, value) for name, value in sizes.items()]
        layer.call = f"ag::maxpool2d<{layer.config_name}>({self._x(node)}, {self._y(node)});"
        layer.line_buffer = ("maxpool2d_line_buffer", [self._y(node)])
        layer.kernel = pool_name(node, op)

    def _averagepool(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        sizes = avgpool_sizes(node, op)
        mean = q.param("mean")
        value_type(node.inputs[0]), value_type(node.outputs[0])  # fixed point, or a clear error
        if not isinstance(mean, Rescale) or mean.out is not None:
            raise QuantizationError(f"{node.name}: AveragePool has no exact 'mean' scaling in its precision params")
        scales = mean.constant.array.reshape(-1)
        if np.all(scales == scales[0]):  # every position counts the same taps: one constant
            scales = scales[:1]
        layer.config += [("int", name, value) for name, value in sizes.items()]
        layer.config += [("int", "n_scales", len(scales)), ("type", "sum_t", self._typedef(layer, "sum", mean.x_type)),
                         ("type", "pre_t", self._typedef(layer, "pre", mean.pre or mean.x_type)),
                         ("type", "scale_t", self._typedef(layer, "scale", mean.constant.type))]
        layer.arrays.append(ConstArray(f"{layer.cname}_scale", f"{layer.cname}_scale_t",
                                       exact_literals(scales, mean.constant.type, f"{node.name} 1/count")))
        layer.call = f"ag::avgpool2d<{layer.config_name}>({self._x(node)}, {self._y(node)}, {layer.cname}_scale);"
        layer.line_buffer = ("avgpool2d_line_buffer", [self._y(node), f"{layer.cname}_scale"])
        layer.kernel = pool_name(node, op) + (", count includes padding" if op.count_include_pad else "")
        layer.multipliers = 1  # one product per output position, pipelined over positions

    def _relu(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        layer.call = f"ag::relu<{node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = "relu"

    def _copy(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        x, y = node.inputs[0].dtype, node.outputs[0].dtype
        if node.op_type == "Cast" and isinstance(x, FixedType) and not isinstance(y, FixedType):
            raise OptionError(f"{node.name}: Cast from fixed point to {y} has no HLS kernel (ONNX truncates toward "
                              "zero; the kernels floor)")
        value_type(node.inputs[0]), value_type(node.outputs[0])  # fixed point (or integers), or a clear error
        layer.call = f"ag::copy<{node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = "copy (layout unchanged)"

    def _softmax(self, layer: Layer, node: Node, q, op, choice: LayerChoice) -> None:
        shape = node.inputs[0].shape
        axis = op.axis % len(shape)
        if axis != len(shape) - 1:
            raise OptionError(f"{node.name}: Softmax along axis {op.axis} of {shape}; the HLS kernel needs the last "
                              "axis")
        value_type(node.inputs[0]), value_type(node.outputs[0])  # fixed point, or a clear error
        n = shape[-1]
        rows = int(np.prod(shape[:-1], dtype=np.int64))
        exp, recip = q.param("exp"), q.param("reciprocal")
        self._softmax_config(layer, node, exp, recip, rows, n)
        c = layer.cname
        layer.call = (f"ag::softmax<{layer.config_name}>({self._x(node)}, {self._y(node)}, {c}_exp_table, "
                      f"{c}_recip_table, {c}_log2e);")
        layer.kernel = f"softmax, exp table {len(exp.values)}, reciprocal table {len(recip.values)}"

    def _softmax_config(self, layer: Layer, node: Node, exp, recip, rows: int, n: int) -> None:
        """The types, constants and tables ag::softmax reads from its CONFIG (shared with attention)."""
        scale = exp.scale
        if scale.out is None or recip.function != "reciprocal" or exp.index_bits < 1 or recip.index_bits < 1:
            raise QuantizationError(f"{node.name}: softmax precision params the HLS kernel does not know: {exp}, "
                                    f"{recip}")
        t_type = scale.out
        if t_type.fractional < 1:
            raise QuantizationError(f"{node.name}: the exp argument type {t_type} has no fractional bits")
        entry, result = exp.out, exp.result
        lo, hi = min(exp.min_shift, 0), max(exp.max_shift, 0)
        exp_wide = exact_type(entry.width + hi - lo, entry.integer + hi, entry.signed)
        total = sum_type(result, n)
        s_frac, s_int = total.fractional, total.integer
        prod = product_type(result, recip.out)
        # y = e * entry * 2**-p with p = lead - s_frac, lead in [0, width): shifts from -(s_int - 1) to s_frac
        out_wide = exact_type(prod.width + s_frac + max(s_int - 1, 0), prod.integer + s_frac, prod.signed)
        floor_bits = t_type.integer + 1
        if floor_bits > 31 or total.signed:
            raise QuantizationError(f"{node.name}: softmax types out of the kernel's range ({t_type}, {total})")
        types = {"diff_t": scale.x_type, "pre_t": scale.pre or scale.x_type, "log2e_t": scale.constant.type,
                 "t_t": t_type, "floor_t": integer_type(floor_bits), "exp_entry_t": entry, "exp_t": result,
                 "exp_wide_t": exp_wide, "sum_t": total, "recip_entry_t": recip.out, "out_wide_t": out_wide}
        for name, t in types.items():
            layer.config.append(("type", name, self._typedef(layer, name[:-2], t)))
        layer.config += [("int", "rows", rows), ("int", "n", n), ("int", "t_frac", t_type.fractional),
                         ("int", "exp_bits", exp.index_bits), ("int", "min_shift", exp.min_shift),
                         ("int", "max_shift", exp.max_shift), ("int", "recip_bits", recip.index_bits),
                         ("int", "sum_width", total.width), ("int", "sum_frac", s_frac)]
        c = layer.cname
        layer.arrays += [
            ConstArray(f"{c}_exp_table", f"{c}_exp_entry_t", exact_literals(exp.values, entry, "exp table")),
            ConstArray(f"{c}_recip_table", f"{c}_recip_entry_t",
                       exact_literals(recip.values, recip.out, "reciprocal table")),
        ]
        layer.scalars = [(f"{c}_log2e", f"{c}_log2e_t",
                          exact_literals(scale.constant.array, scale.constant.type, "log2(e)")[0])]
