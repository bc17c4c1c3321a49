import json
import re

import pytest

from accelgen.report import LayerEstimate, Report


@pytest.fixture
def report():
    layers = [LayerEstimate("fc1", "Dense", "dense latency", 3, 1, 100, 2000, 300, 0, ["100 multipliers"]),
              LayerEstimate("sm", "Softmax", "softmax <tables>", 4, 1, 5, 900, 60, 2)]
    return Report("net", "hls", "xczu7ev-ffvc1156-2-e", 5.0, 8, 1, 105, 2900, 400, 2, layers,
                  {"dsp": 1728, "lut": 230400, "ff": 460800, "bram18": 624}, {"strategy": "latency"},
                  ["DSP at 90% of the part"])


def test_fields_and_utilization(report):
    assert report.latency_ns == 40.0
    assert report.utilization["dsp"] == pytest.approx(105 / 1728)
    assert report.utilization["bram18"] == pytest.approx(2 / 624)


def test_json_round_trip(report, tmp_path):
    d = json.loads(report.to_json(tmp_path / "r.json"))
    assert d["latency_cycles"] == 8 and d["latency_ns"] == 40.0 and len(d["layers"]) == 2
    assert d["layers"][0]["dsp"] == 100 and d["utilization"]["lut"] == pytest.approx(2900 / 230400)
    assert json.loads((tmp_path / "r.json").read_text()) == d


def test_markdown_has_every_layer_and_total(report):
    md = report.to_markdown()
    assert "| fc1 | Dense |" in md and "| sm | Softmax |" in md and "**105**" in md
    assert "DSP at 90% of the part" in md


def test_html_is_self_contained_with_charts(report, tmp_path):
    html = report.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == html
    assert html.count("<svg") == 5 + 4  # latency, DSP, LUT, FF, BRAM18 charts and four gauges
    assert "<script" not in html and "<link" not in html
    # the only URL is the SVG namespace; nothing is fetched
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}
    assert "softmax &lt;tables&gt;" in html  # escaped
    assert "DSP at 90% of the part" in html


def test_html_svgs_are_well_formed(report):
    import xml.etree.ElementTree as ET

    html = report.to_html()
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 9
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and float(root.get("width")) > 0


def test_text_table_for_the_terminal(report):
    text = report.to_text()
    lines = text.splitlines()
    assert lines[0] == report.summary()
    header = next(line for line in lines if line.startswith("layer"))
    assert header.split() == ["layer", "op", "latency", "II", "DSP", "LUT", "FF", "BRAM18"]
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "8", "1", "105", "2900", "400", "2"]
    assert "6.1%" in text and "- DSP at 90% of the part" in text
    assert len({len(line) for line in lines[2:5]}) == 1  # aligned columns


def test_from_json_gives_the_same_report(report, tmp_path):
    report.to_json(tmp_path / "r.json")
    again = Report.from_json(tmp_path / "r.json")
    assert again == report and again.to_markdown() == report.to_markdown()


def test_long_layer_names_keep_both_ends_in_chart_labels(report):
    report.layers[0].name = "/blocks.11/attention/self/query_key_value_projection/MatMul_0"
    html = report.to_html()
    assert "/blocks.11/" in html and "MatMul_0</text>" in html and "\u2026" in html
    assert f"<title>{report.layers[0].name}</title>" in html  # the full name as the tooltip
