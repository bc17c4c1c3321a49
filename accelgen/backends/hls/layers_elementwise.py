"""Layer contexts of the elementwise, data-movement, reduction and standalone-activation kernels, mixed into
layers.LayerBuilder (which dispatches on `_<op_type lower case>`). Kernels: templates/hls/kernels/ag_elementwise.h
and ag_reduce.h.

Data movement (Transpose, Slice, Gather with constant indices, Expand, Tile, Split, DepthToSpace, SpaceToDepth) is
one kernel: the generator runs the op itself on the element numbers 0..n-1, which gives the source element of every
output element; the kernel copies through that constant table, which synthesis turns into wiring. So the HLS layout
of each of these ops is the interpreter's by construction, not a second implementation of it.
"""

from __future__ import annotations

import numpy as np

from accelgen.backends.hls.cpp import exact_literals
from accelgen.errors import OptionError, QuantizationError
from accelgen.ir.ops.activations import _Tabled
from accelgen.ir.ops.fixed_math import Rescale, product_type, sum_type
from accelgen.ir.types import FixedType

BINARY_OPS = {"Add": "ag::add_op", "Sub": "ag::sub_op", "Mul": "ag::mul_op"}
GATHER_OPS = ("Transpose", "Slice", "Gather", "Expand", "Tile", "Split", "DepthToSpace", "SpaceToDepth")
TABLE_OPS = ("Sigmoid", "Tanh")
ELEMENTWISE_OPS = (*BINARY_OPS, *GATHER_OPS, *TABLE_OPS, "Concat", "BatchNormalization", "ReduceMean", "ReduceSum")


def _count(dims) -> int:
    return int(np.prod(dims, dtype=np.int64))


def index_ctype(n: int) -> str:
    """The narrowest unsigned C type that numbers `n` elements."""
    return "unsigned short" if n <= 1 << 16 else "unsigned"


class ElementwiseKernels:
    """Methods of LayerBuilder. Uses LayerBuilder's _typedef, _x, _y, _const, _table, fixed_type."""

    def _operand(self, layer, node, slot: int) -> str:
        """The C name of input `slot`: its tensor, or for a constant an array of this layer (named per layer, so a
        constant feeding two nodes is never defined twice)."""
        v = node.inputs[slot]
        t = self.fixed_type(v)
        if not v.is_constant:
            return self._x(node, slot)
        name = f"{layer.cname}_in{slot}"
        self._const(layer, name, self._typedef(layer, f"in{slot}", t),
                    exact_literals(v.data, t, f"{node.name} input {slot}"))
        return name

    # -- Add, Sub, Mul -------------------------------------------------------------------------------------------
    def _binary(self, layer, node, functor: str) -> None:
        a, b = node.inputs
        out = node.outputs[0]
        self.fixed_type(out)
        names = [self._operand(layer, node, slot) for slot in (0, 1)]
        n = out.type.numel
        if tuple(a.shape) == tuple(b.shape) == tuple(out.shape):
            layer.call = f"ag::elementwise<{functor}, {n}>({names[0]}, {names[1]}, {self._y(node)});"
            layer.kernel = f"{node.op_type.lower()}, {n} elements"
        else:
            index = index_ctype(max(a.type.numel, b.type.numel))
            maps = []
            for slot, v in enumerate((a, b)):
                numbers = np.arange(v.type.numel, dtype=np.int64).reshape(v.shape)
                source = np.broadcast_to(numbers, out.shape).reshape(-1)
                self._const(layer, f"{layer.cname}_index{slot}", index, [str(int(i)) for i in source])
                maps.append(f"{layer.cname}_index{slot}")
            layer.call = (f"ag::elementwise_broadcast<{functor}, {n}, {a.type.numel}, {b.type.numel}>({names[0]}, "
                          f"{names[1]}, {self._y(node)}, {maps[0]}, {maps[1]});")
            layer.kernel = f"{node.op_type.lower()} broadcasting {list(a.shape)} and {list(b.shape)}"
        layer.multipliers = n if node.op_type == "Mul" else 0

    def _add(self, layer, node, q, op, choice) -> None:
        self._binary(layer, node, BINARY_OPS["Add"])

    def _sub(self, layer, node, q, op, choice) -> None:
        self._binary(layer, node, BINARY_OPS["Sub"])

    def _mul(self, layer, node, q, op, choice) -> None:
        self._binary(layer, node, BINARY_OPS["Mul"])

    # -- data movement -------------------------------------------------------------------------------------------
    def _gather_map(self, layer, node, q, op, choice) -> None:
        x = node.inputs[0]
        self.fixed_type(x)
        extra = []
        for slot, v in enumerate(node.inputs[1:], 1):
            if v is not None and not v.is_constant:
                raise OptionError(f"{node.name}: {node.op_type} with a run-time input {slot} ({v.name!r}) has no HLS "
                                  "kernel; its indices, shape or repeats must be constants")
            extra.append(None if v is None else v.data)
        numbers = np.arange(x.type.numel, dtype=np.int64).reshape(x.shape)
        sources = op.compute([numbers, *extra])
        index = index_ctype(x.type.numel)
        calls = []
        for k, (out, source) in enumerate(zip(node.outputs, sources)):
            self.fixed_type(out)
            source = np.asarray(source).reshape(-1)
            if source.size != out.type.numel:
                raise AssertionError(f"{node.name}: index map of {source.size} elements for output {out.shape}")
            name = f"{layer.cname}_index{k}"
            self._const(layer, name, index, [str(int(i)) for i in source])
            calls.append(f"ag::gather<{x.type.numel}, {out.type.numel}>({self._x(node)}, {self._y(node, k)}, {name});")
        layer.call = "\n    ".join(calls)
        layer.kernel = f"{node.op_type.lower()} (constant index table: wiring)"

    _transpose = _slice = _gather = _expand = _tile = _split = _depthtospace = _spacetodepth = _gather_map

    def _concat(self, layer, node, q, op, choice) -> None:
        out = node.outputs[0]
        self.fixed_type(out)
        shape = tuple(out.shape)
        axis = op.axis % len(shape)
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
        calls, offset = [], 0
        for slot, v in enumerate(node.inputs):
            block = v.shape[axis] * inner
            name = self._operand(layer, node, slot)
            calls.append(f"ag::concat_part<{outer}, {block}, {shape[axis] * inner}, {offset}>({name}, "
                         f"{self._y(node)});")
            offset += block
        layer.call = "\n    ".join(calls)
        layer.kernel = f"concat of {len(node.inputs)} along axis {axis}"

    # -- BatchNormalization ------------------------------------------------------------------------------------
    def _batchnormalization(self, layer, node, q, op, choice) -> None:
        x = node.inputs[0]
        self.fixed_type(x), self.fixed_type(node.outputs[0])
        multiplier, offset = q.param("multiplier"), q.param("offset")
        if multiplier is None or offset is None:
            raise QuantizationError(f"{node.name}: BatchNormalization has no folded multiplier and offset")
        shape = tuple(x.shape)
        channels = int(np.prod(shape[1:] if not op.spatial else shape[1:2], dtype=np.int64))
        inner = 1 if not op.spatial else int(np.prod(shape[2:], dtype=np.int64))
        names = []
        for what, const in (("a", multiplier), ("b", offset)):
            if const.array.size != channels:
                raise QuantizationError(f"{node.name}: {what} has {const.array.size} values for {channels} channels")
            name = f"{layer.cname}_{what}"
            self._const(layer, name, self._typedef(layer, what, const.type),
                        exact_literals(const.array, const.type, f"{node.name} {what}"))
            names.append(name)
        layer.call = (f"ag::scale_shift<{shape[0]}, {channels}, {inner}>({self._x(node)}, {self._y(node)}, "
                      f"{names[0]}, {names[1]});")
        layer.multipliers = channels * inner
        layer.kernel = f"batch norm (scale and shift per channel, {channels} channels)"

    # -- reductions ----------------------------------------------------------------------------------------------
    def _reduction_layout(self, node, op) -> tuple[int, int, int]:
        """(outer, r, inner) of a reduction over a contiguous block of axes (size-1 axes ignored)."""
        shape = tuple(node.inputs[0].shape)
        axes = set(op.reduced_axes(len(shape)))
        real = [(d, i in axes) for i, d in enumerate(shape) if d != 1]
        flags = [reduced for _, reduced in real]
        if True not in flags:
            return int(np.prod(shape, dtype=np.int64)), 1, 1
        first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
        if not all(flags[first:last + 1]):
            raise OptionError(f"{node.name}: {node.op_type} over the non-adjacent axes {sorted(axes)} of {shape} has "
                              "no HLS kernel in this version")
        dims = [d for d, _ in real]
        return _count(dims[:first]), _count(dims[first:last + 1]), _count(dims[last + 1:])

    def _reduction_config(self, layer, node, op, sum_type: FixedType) -> None:
        self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        outer, r, inner = self._reduction_layout(node, op)
        layer.config += [("unsigned", "outer", outer), ("unsigned", "r", r), ("unsigned", "inner", inner),
                         ("type", "sum_t", self._typedef(layer, "sum", sum_type))]
        layer.kernel = f"{node.op_type.lower()} of {r} values, {outer * inner} outputs"

    def _reducesum(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self._reduction_config(layer, node, op, sum_type(x, self._reduction_layout(node, op)[1]))
        layer.call = f"ag::reduce_sum<{layer.config_name}>({self._x(node)}, {self._y(node)});"

    def _reducemean(self, layer, node, q, op, choice) -> None:
        mean = q.param("mean")
        if not isinstance(mean, Rescale):
            raise QuantizationError(f"{node.name}: ReduceMean has no 'mean' scaling in its precision params")
        pre = mean.pre or mean.x_type
        self._reduction_config(layer, node, op, mean.x_type)
        inner = self._reduction_layout(node, op)[2]
        for name, t in (("pre_t", pre), ("scale_t", mean.constant.type),
                        ("mean_t", mean.out or product_type(pre, mean.constant.type))):
            layer.config.append(("type", name, self._typedef(layer, name[:-2], t)))
        layer.scalars.append((f"{layer.cname}_scale", f"{layer.cname}_scale_t",
                              exact_literals(mean.constant.array, mean.constant.type, "1/n")[0]))
        layer.call = f"ag::reduce_mean<{layer.config_name}>({self._x(node)}, {self._y(node)}, {layer.cname}_scale);"
        layer.multipliers = inner  # one product per output element of a row, pipelined over the rows

    # -- standalone table activations ----------------------------------------------------------------------------
    def _table_map(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        table = q.param("table")
        if table is None or type(op).lookup_fixed is not _Tabled.lookup_fixed:
            raise QuantizationError(f"{node.name}: {node.op_type} has no plain lookup table in its precision params")
        struct = self._table(layer, x, table)[len("ag::table_activation<"):-1]
        layer.call = f"ag::table_map<{struct}, {node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = f"{node.op_type.lower()} table {table.size}"

    _sigmoid = _tanh = _table_map
