"""Per-layer precision configuration: accelgen's own form and hls4ml's, from dicts, YAML and JSON files, with
errors that name the bad key."""

import json

import pytest

import accelgen
from accelgen.errors import QuantizationError
from accelgen.quant.config import load_config, load_overrides
from tests.quant.datasets import ROOT, jets


@pytest.fixture(scope="module")
def graph():
    return accelgen.optimize(accelgen.load(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx",
                                           input_shapes={"input": (8, 16)}))


def calib():
    return {"input": jets(64, seed=1)[0]}


def test_native_form_is_validated_and_canonical(graph):
    first = graph.nodes[0].name
    o = load_overrides({"Dense": {"width": 12, "weight_bits": 8}, first: {"type": "ap_fixed<20,8,AP_RND,AP_SAT>"},
                        "Softmax": {"type": "uint<8>", "weight_type": "ap_int<4>"}}, graph)
    assert o == {"Dense": {"width": 12, "weight_bits": 8}, first: {"type": "fixed<20,8,RND,SAT>"},
                 "Softmax": {"type": "ufixed<8,8>", "weight_type": "fixed<4,4>"}}


def test_yaml_file_drives_quantize(graph, tmp_path):
    first, last = graph.nodes[0].name, graph.nodes[3].name
    path = tmp_path / "layers.yaml"
    path.write_text(f"# per-layer settings\nDense: {{width: 10}}\n'{first}':\n  type: fixed<18,6,RND,SAT>\n"
                    f"'{last}': {{weight_bits: 6}}\n")
    config = load_config(path, graph)
    assert config.precision is None and config.ignored == []
    q = accelgen.quantize(graph, calib(), **config.kwargs())
    out = [n.outputs[0].dtype for n in q.nodes]
    assert str(out[0]) == "fixed<18,6,RND,SAT>" and all(t.width == 10 for t in out[1:4])
    assert q.nodes[3].inputs[1].dtype.width == 6 and q.nodes[2].inputs[1].dtype.width == 16


def test_json_file_and_empty_yaml(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"Dense": {"width": 12}}))
    assert load_overrides(tmp_path / "a.json") == {"Dense": {"width": 12}}
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_overrides(str(tmp_path / "empty.yaml")) == {}


def test_hls4ml_form_maps_to_precision_and_overrides(graph):
    first, second = graph.nodes[0].name, graph.nodes[1].name
    hls = {
        "Model": {"Precision": {"default": "fixed<16,6>", "maximum": "fixed<24,10>"}, "ReuseFactor": 1,
                  "Strategy": "Latency"},
        "LayerType": {"Dense": {"Precision": {"result": "fixed<14,6>", "weight": "auto", "accum": "fixed<32,12>"}},
                      "Softmax": {"Precision": "ufixed<12,1,RND,SAT>"}},
        "LayerName": {first: {"Precision": {"result": "ap_fixed<18,8>", "weight": "fixed<8,2>",
                                            "bias": "fixed<8,2>"}, "ReuseFactor": 4},
                      second: {"Precision": "auto"}},
    }
    config = load_config(hls, graph)
    assert config.precision == "fixed<16,6>"
    assert config.overrides[first] == {"type": "fixed<18,8>", "weight_type": "fixed<8,2>"}
    assert second not in config.overrides  # auto: accelgen's inference decides
    for op in ("Dense", "Gemm", "MatMul"):  # an hls4ml Dense is a Gemm or MatMul before optimize fuses it
        assert config.overrides[op] == {"type": "fixed<14,6>"}
    assert config.overrides["Softmax"] == {"type": "ufixed<12,1,RND,SAT>", "weight_type": "ufixed<12,1,RND,SAT>"}
    ignored = "\n".join(config.ignored)
    for word in ("ReuseFactor", "Strategy", "maximum", "accum", "exact"):
        assert word in ignored
    q = accelgen.quantize(graph, calib(), **config.kwargs())
    types = [str(n.outputs[0].dtype) for n in q.nodes]
    assert types == ["fixed<18,8>", "fixed<14,6>", "fixed<14,6>", "fixed<14,6>", "ufixed<12,1,RND,SAT>"]
    assert str(q.nodes[0].inputs[1].dtype) == "fixed<8,2>" and str(q.nodes[1].inputs[1].dtype) == "fixed<16,6,RND_CONV,SAT>"
    with pytest.raises(QuantizationError, match="model-wide precision"):
        load_overrides(hls, graph)


def test_hls4ml_yaml_file(tmp_path):
    path = tmp_path / "hls4ml.yml"
    path.write_text("Model:\n  Precision: ap_fixed<16,6>\n  ReuseFactor: 1\nLayerName:\n  fc1:\n    Precision:\n"
                    "      result: fixed<12,4>\n")
    config = load_config(path)
    assert config.precision == "fixed<16,6>" and config.overrides == {"fc1": {"type": "fixed<12,4>"}}
    assert config.kwargs() == {"overrides": {"fc1": {"type": "fixed<12,4>"}}, "precision": "fixed<16,6>"}


def test_a_node_named_like_an_hls4ml_section_is_not_hls4ml():
    assert load_config({"Model": {"width": 8}}).overrides == {"Model": {"width": 8}}


@pytest.mark.parametrize("config, message", [
    ({"Dense": {"bits": 8}}, r"'Dense'.*unknown setting 'bits'"),
    ({"Dense": {"Precision": "fixed<8,3>"}}, r"unknown setting 'Precision'.*LayerName"),
    ({"Dense": {"width": 0}}, r"'Dense' width.*2\.\.32"),
    ({"Dense": {"width": 40}}, r"'Dense' width"),
    ({"Dense": {"width": "12"}}, r"'Dense' width"),
    ({"Dense": {"weight_bits": True}}, r"'Dense' weight_bits"),
    ({"Dense": {"type": "fixed<8,10,FOO>"}}, r"'Dense' type.*mode"),
    ({"Dense": {"type": "fixed<-4,2>"}}, r"'Dense' type"),
    ({"Dense": {"type": 16}}, r"'Dense' type.*fixed-point type"),
    ({"Dense": {"width": 8, "type": "fixed<8,3>"}}, r"'Dense'.*not both"),
    ({"Dense": {"per_channel": "yes"}}, r"'Dense' per_channel"),
    ({"Dense": 12}, r"'Dense': expected settings"),
    ({"/net/net.0/Gemm": {"width": 8}}, r"'/net/net.0/Gemm' is neither.*did you mean '/net/net.0/Gemm_0_0'"),
    ({"Model": {"Precision": "fixed<16,6>"}, "Dense": {"width": 8}}, r"unknown top-level key 'Dense'"),
    ({"LayerName": {"fc1": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<6,2>"}}}}, r"'fc1'.*bias"),
    ({"LayerName": {"fc1": "fixed<8,2>"}}, r"LayerName 'fc1': expected a mapping"),
    ({"LayerType": {"Dense": {"Precision": "fixed<x,2>"}}}, r"LayerType 'Dense' Precision default"),
    ({"Model": {"Precision": {"result": "fixed<8,2>", "weight": "fixed<6,2>"}}}, r"Model Precision"),
])
def test_bad_configurations_name_the_key(graph, config, message):
    with pytest.raises(QuantizationError, match=message):
        load_config(config, graph)


def test_bad_sources(tmp_path):
    with pytest.raises(QuantizationError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("Dense: {width: 12\n")
    with pytest.raises(QuantizationError, match="not valid YAML at line"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(QuantizationError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    (tmp_path / "flow.yaml").write_text("Dense: {type: fixed<16,6>}\n")  # YAML splits the type at the comma
    with pytest.raises(QuantizationError, match=r"'Dense' type: 'fixed<16' is cut short.*quote"):
        load_config(tmp_path / "flow.yaml")
    (tmp_path / "list.yaml").write_text("- Dense\n")
    with pytest.raises(QuantizationError, match="got a list"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(QuantizationError, match="dict or a YAML"):
        load_config(42)
