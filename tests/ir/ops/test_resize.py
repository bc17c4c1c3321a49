"""Resize (opsets 10-19) and Upsample (7-9) against onnxruntime: every coordinate transformation with nearest,
linear and cubic interpolation, scales and sizes, axes, aspect-ratio policies, cropping and antialiasing."""

from __future__ import annotations

import numpy as np
import pytest

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from tests.ir.ops.test_shape import check, i64, model
from tests.ortcheck import rand

COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]
SCALES = [(1, 1, 2.0, 3.0), (1, 1, 0.6, 0.5), (1, 1, 1.7, 0.26), (1, 1, 1.0, 2.5)]


def f32(*values):
    return np.array(values, np.float32)


def resize(x, opset=19, roi=None, scales=None, sizes=None, **attrs):
    consts = {"roi": f32(*(roi or ())), "scales": f32(*(scales or ()))}
    if sizes is not None:
        consts["sizes"] = i64(*sizes)
    return check("Resize", {"x": x}, consts, attrs, opset=opset)


# onnxruntime's nearest path rounds half_pixel_symmetric coordinates differently from its own linear path (a tie
# at exactly 0.5 there, 0.5000002 in linear mode and in accelgen), so that mode is checked on integer scales only.
NEAREST_CASES = [(c, s) for c in COORDS + ["tf_half_pixel_for_nn"] for s in SCALES
                 if c != "half_pixel_symmetric" or s[2:] == (2.0, 3.0)]


@pytest.mark.parametrize("coord, scales", NEAREST_CASES)
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_nearest_scales(coord, nearest_mode, scales):
    resize(rand(1, 2, 5, 7), scales=scales, mode="nearest", coordinate_transformation_mode=coord,
           nearest_mode=nearest_mode, opset=13)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("scales", SCALES)
def test_interpolating_scales(mode, coord, scales):
    resize(rand(1, 2, 5, 7), scales=scales, mode=mode, coordinate_transformation_mode=coord)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("sizes", [(1, 2, 3, 4), (1, 2, 9, 13), (1, 2, 1, 1), (1, 2, 5, 7)])
def test_sizes(mode, sizes):
    resize(rand(1, 2, 5, 7), sizes=sizes, mode=mode)


def test_cubic_options():
    resize(rand(1, 1, 6, 6), scales=(1, 1, 0.7, 1.8), mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_tf_crop_and_resize(mode):
    roi = (0, 0, 0.2, -0.3, 1, 1, 0.9, 1.2)  # the width crop reaches past the input: extrapolation_value
    resize(rand(1, 1, 6, 8), roi=roi, sizes=(1, 1, 4, 5), mode=mode,
           coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-9.0)


@pytest.mark.parametrize("axes, scales", [((2, 3), (2.0, 0.5)), ((3, 2), (0.5, 2.0)), ((-1,), (1.5,))])
def test_axes(axes, scales):
    resize(rand(1, 2, 4, 6), scales=scales, axes=list(axes), mode="linear")


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_keep_aspect_ratio(policy):
    resize(rand(1, 1, 4, 6), sizes=(7, 8), axes=[2, 3], keep_aspect_ratio_policy=policy, mode="linear")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_antialias(mode):
    resize(rand(1, 1, 9, 10), scales=(1, 1, 0.5, 0.3), mode=mode, antialias=1)


def test_integer_data_nearest():
    x = np.arange(24, dtype=np.uint8).reshape(1, 1, 4, 6)
    resize(x, scales=(1, 1, 1.5, 0.5), mode="nearest")


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [(1, 1, 2.0, 3.0), (1, 1, 0.5, 0.75), (1, 1, 1.6, 2.2)])
def test_resize_opset10(mode, scales):
    check("Resize", {"x": rand(1, 1, 4, 5)}, {"scales": f32(*scales)}, {"mode": mode}, opset=10)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [(1, 1, 2.0, 3.0), (1, 1, 1.5, 2.5)])
def test_upsample(mode, scales):
    x = rand(1, 1, 3, 4)
    g = check("Upsample", {"x": x}, {"scales": f32(*scales)}, {"mode": mode}, opset=9)
    assert [n.op_type for n in g.nodes] == ["Resize"]
    check("Upsample", {"x": x}, attrs={"mode": mode, "scales": list(scales)}, opset=7)


def test_errors():
    x = rand(1, 1, 4, 4)
    with pytest.raises(InvalidModelError, match="mode"):
        accelgen.load(model("Resize", {"x": x}, {"roi": f32(), "scales": f32(1, 1, 2, 2)}, {"mode": "area"}))
    with pytest.raises(ShapeError, match="exactly one"):
        accelgen.load(model("Resize", {"x": x}, {"roi": f32(), "scales": f32(1, 1, 2, 2), "sizes": i64(1, 1, 8, 8)}))
    with pytest.raises(ShapeError, match="scales"):
        accelgen.load(model("Resize", {"x": x}, {"roi": f32(), "scales": f32(2, 2)}))
    with pytest.raises(InvalidModelError, match="at least 1"):
        accelgen.load(model("Upsample", {"x": x}, {"scales": f32(1, 1, 0.5, 1)}, opset=9))


def test_cost_counts_interpolation_taps():
    from accelgen.ir.ops.resize import Resize
    from accelgen.ir.types import F32, TensorType

    x = TensorType((1, 1, 4, 6), F32)
    for mode, taps in (("linear", 2), ("cubic", 4)):
        op = Resize(mode=mode, scales=(1.0, 1.0, 2.0, 2.0))
        (y,) = op.infer([x])
        # the height pass makes 1*1*8*6 values, the width pass 1*1*8*12
        assert op.cost([x], [y]).macs == (8 * 6 + 8 * 12) * taps
    nearest = Resize(scales=(1.0, 1.0, 2.0, 2.0))
    assert nearest.cost([x], nearest.infer([x])).macs == 0
