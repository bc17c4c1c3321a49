"""Whole generated projects simulate to the same bits on accelgen's fast C-sim types as on the Xilinx headers.

The projects are the lint test's, which between them use every kernel, plus io stream forms; each is built twice
(`types="fast"`, the default, and `types="ap"`) and run on the same inputs, spread wider than the calibration data
so that saturation is reached. The operation-level comparison is test_fast_types.py."""

import numpy as np
import pytest

from accelgen.backends.hls import compile
from accelgen.backends.hls.project import HlsProject
from accelgen.errors import InputError
from tests.backends.hls.test_lint import GRAPHS, needs_gxx

STREAM = {"conv_forms_stream": "conv_forms", "jet_transformer_stream": "jet_transformer"}


@pytest.fixture(scope="module")
def projects(tmp_path_factory, jet_project, cnn_project):
    root = tmp_path_factory.mktemp("csim_types")
    out = {"jet_mlp": jet_project, "digits_cnn": cnn_project}
    for name, make in GRAPHS.items():
        out[name] = compile(make(), out_dir=root / name)
    out["jet_transformer_resource"] = compile(GRAPHS["jet_transformer"](), out_dir=root / "resource",
                                              strategy="resource", reuse_factor=2)
    for name, graph in STREAM.items():
        out[name] = compile(GRAPHS[graph](), out_dir=root / name, io="stream")
    return out


def _inputs(project: HlsProject, n: int) -> dict:
    rng = np.random.default_rng(3)
    shapes = {s["name"]: tuple(s["shape"][1:] if s["shape"][0] == 1 else s["shape"]) for s in project.manifest["inputs"]}
    return {name: 3 * rng.normal(size=(n, *shape)) for name, shape in shapes.items()}


@needs_gxx
@pytest.mark.parametrize("name", ["jet_mlp", "digits_cnn", *GRAPHS, "jet_transformer_resource", *STREAM])
def test_fast_types_simulate_the_same_bits(projects, name):
    project = projects[name]
    assert project.csim_types("fast") == "fast"  # not the fallback: both builds below differ
    x = _inputs(project, 40)
    fast, ap = project.predict(x, types="fast"), project.predict(x, types="ap")
    assert fast.keys() == ap.keys()
    for out in fast:
        np.testing.assert_array_equal(fast[out], ap[out], err_msg=f"{name}: output {out}")
    assert np.unique(np.concatenate([v.ravel() for v in fast.values()])).size > 1  # not a constant design


def test_wide_designs_fall_back_to_the_xilinx_headers(jet_project):
    wide = HlsProject(jet_project.path, {**jet_project.manifest, "widest_type_bits": 65})
    assert wide.csim_types("fast") == "ap"
    assert jet_project.csim_types("ap") == "ap"
    with pytest.raises(InputError, match="C-sim types must be one of"):
        jet_project.csim_types("fastest")
