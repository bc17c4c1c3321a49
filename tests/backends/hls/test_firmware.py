"""Synthesizability discipline of the generated code: a lint for constructs HLS cannot synthesize, a warning-free
g++ -Wall -Wextra build (ap_types' own warnings excluded), and the Vitis testbench passing under g++."""

import re
import shutil
import subprocess

import pytest

FORBIDDEN = {
    r"\bnew\b": "dynamic allocation (new)",
    r"\bdelete\b": "dynamic deallocation (delete)",
    r"\b(malloc|calloc|realloc|free)\s*\(": "C heap allocation",
    r"std::(vector|string|map|list|deque|unique_ptr|shared_ptr)": "a dynamic std container",
    r"\bwhile\b": "a loop without a static bound",
    r"\bgoto\b": "goto",
    r"\b(throw|try|catch)\b": "exceptions",
    r"\b(printf|cout|cerr)\b": "I/O",
    r"\bstatic\s+(?!const)\w+[^;(]*;": "mutable static state",
}


def firmware_files(project):
    return sorted(p for p in (project.path / "firmware").rglob("*") if p.suffix in (".h", ".cpp"))


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)


@pytest.mark.parametrize("which", ["jet_project", "cnn_project"])
def test_firmware_has_no_forbidden_constructs(which, request):
    project = request.getfixturevalue(which)
    problems = []
    for path in firmware_files(project):
        code = strip_comments(path.read_text())
        for pattern, what in FORBIDDEN.items():
            if re.search(pattern, code):
                problems.append(f"{path.name}: {what}")
        # recursion: a function whose body calls itself by name
        for m in re.finditer(r"\b(\w+)\s*\([^;{)]*\)\s*\{", code):
            name = m.group(1)
            body_end = code.find("\n}", m.end())
            if name not in ("if", "for", "switch") and re.search(rf"\b{name}\s*[<(]", code[m.end():body_end]):
                problems.append(f"{path.name}: {name} calls itself")
    assert problems == []


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@needs_gxx
@pytest.mark.parametrize("which", ["jet_project", "cnn_project"])
def test_firmware_and_testbench_build_warning_free_and_pass(which, request, tmp_path):
    project = request.getfixturevalue(which)
    top = project.manifest["top"]
    exe = tmp_path / "csim_test"
    # -Wno-unknown-pragmas: `#pragma HLS` is for Vitis; g++ would list every one of them
    build = subprocess.run(["g++", "-std=c++14", "-O1", "-Wall", "-Wextra", "-Wno-unknown-pragmas",
                            "-Wno-free-nonheap-object", "-isystem", "ap_types", "-Ifirmware",
                            f"tb/{top}_test.cpp", f"firmware/{top}.cpp", "-o", str(exe)],
                           cwd=project.path, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    ours = [line for line in build.stderr.splitlines()
            if re.match(r"(firmware|tb|csim)/[^:]+:\d+(:\d+)?: (warning|error)", line)]
    assert ours == []
    run = subprocess.run([str(exe)], cwd=project.path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 samples, 0 differ" in run.stdout


def test_project_layout(jet_project):
    p, top = jet_project.path, jet_project.manifest["top"]
    for rel in (f"firmware/{top}.cpp", f"firmware/{top}.h", "firmware/defines.h", "firmware/parameters.h",
                "firmware/kernels/ag_dense.h", f"tb/{top}_test.cpp", "tb_data/tb_input_features.dat",
                "tb_data/tb_output_predictions.dat", "build_prj.tcl", "README.md", "manifest.json",
                "ap_types/ap_fixed.h"):
        assert (p / rel).is_file(), rel
    assert list((p / "firmware" / "weights").glob("*.h"))
    tcl = (p / "build_prj.tcl").read_text()
    assert "set_part xcvu13p-flga2577-2-e" in tcl and "create_clock -period 5.0" in tcl
    assert "ap_types" not in tcl  # Vitis uses its own headers


def test_weights_are_exact_literals(jet_graph, jet_project):
    _, q, _ = jet_graph
    import numpy as np

    text = (jet_project.path / "firmware" / "weights" / "l0_dense.h").read_text()
    body = text.split("l0_dense_w[", 1)[1].split("};", 1)[0].split("{", 1)[1]
    values = np.array([float(v) for v in body.replace("\n", " ").split(",") if v.strip()])
    w = q.nodes[0].inputs[1].data
    np.testing.assert_array_equal(values, w[np.nonzero(w)])
