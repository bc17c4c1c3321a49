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


def lint(name: str, text: str) -> list[str]:
    """The constructs HLS cannot synthesize found in one firmware file."""
    code, problems = strip_comments(text), []
    for pattern, what in FORBIDDEN.items():
        if re.search(pattern, code):
            problems.append(f"{name}: {what}")
    # recursion: a function whose body calls itself by name
    for m in re.finditer(r"\b(\w+)\s*\([^;{)]*\)\s*(?:const\s*)?\{", code):
        fn = m.group(1)
        if fn not in ("if", "for", "switch") and re.search(rf"\b{fn}\s*[<(]", _body(code, m.end())):
            problems.append(f"{name}: {fn} calls itself")
    return problems


def test_lint_finds_what_it_forbids():
    bad = """int f(int n) { return n ? f(n - 1) : 0; }
    void g(int *p) { int *q = new int[4]; static int count; while (p) { } }
    template <class T> void h(const T &x) { y = apply(x); }  void apply(int x) { }"""
    assert lint("bad.h", bad) == ["bad.h: dynamic allocation (new)", "bad.h: a loop without a static bound",
                                  "bad.h: mutable static state", "bad.h: f calls itself"]


@pytest.mark.parametrize("which", ["jet_project", "cnn_project"])
def test_firmware_has_no_forbidden_constructs(which, request):
    project = request.getfixturevalue(which)
    assert [p for path in firmware_files(project) for p in lint(path.name, path.read_text())] == []


def _body(code: str, start: int) -> str:
    """The text from `start` (just after a function's opening brace) to its matching closing brace."""
    depth = 1
    for i in range(start, len(code)):
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        if depth == 0:
            return code[start:i]
    return code[start:]


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

    text = (jet_project.path / "firmware" / "weights" / "l0_dense.h").read_text().split("#else", 1)[1]
    body = text.split("l0_dense_w[", 1)[1].split("};", 1)[0].split("{", 1)[1]
    values = np.array([float(v) for v in body.replace("\n", " ").split(",") if v.strip()])
    w = q.nodes[0].inputs[1].data
    np.testing.assert_array_equal(values, w[np.nonzero(w)])


def test_weight_files_hold_the_literals(jet_project):
    """The C simulation reads firmware/weights/*.bin; synthesis compiles the literals: the same numbers."""
    import numpy as np

    weights = jet_project.path / "firmware" / "weights"
    text = strip_comments((weights / "l1_dense.h").read_text()).split("#else", 1)[1]
    arrays = re.findall(r"static const [^=\[]*?(\w+)\[(\d+)\] = \{([^}]*)\}", text)
    assert {name for name, _, _ in arrays} == {"l1_dense_w", "l1_dense_w_in", "l1_dense_w_out", "l1_dense_b"}
    for name, size, body in arrays:
        literals = np.array([float(v) for v in body.replace("\n", " ").split(",") if v.strip()])
        stored = np.fromfile(weights / f"{name}.bin", "<f8")
        assert len(stored) == int(size)
        np.testing.assert_array_equal(stored, literals)


def test_missing_weight_file_is_a_clear_error(jet_graph, tmp_path):
    from accelgen.backends.hls import HlsProject, compile
    from accelgen.errors import InputError

    project = compile(jet_graph[1], out_dir=tmp_path / "p")
    (project.path / "firmware" / "weights" / "l2_dense_w.bin").write_bytes(b"\0" * 8)  # too short
    with pytest.raises(InputError, match=r"firmware/weights/l2_dense_w.bin .* missing or has the wrong size"):
        HlsProject.open(project.path).predict({"input": jet_graph[2]["input"][:2]})


def test_build_script_and_readme_run_without_editing(jet_project):
    p, top = jet_project.path, jet_project.top
    tcl = (p / "build_prj.tcl").read_text()
    for line in (f"open_project -reset {top}_prj", f"set_top {top}",
                 f'add_files firmware/{top}.cpp -cflags "-std=c++14" -csimflags "-DAG_CSIM_WEIGHT_FILES"',
                 f'add_files -tb tb/{top}_test.cpp -cflags "-std=c++14 -DAG_CSIM_WEIGHT_FILES"',
                 "add_files -tb tb_data", "add_files -tb firmware/weights", "csynth_design", "cosim_design",
                 "export_design -format ip_catalog"):
        assert line in tcl, line
    # every path the script names exists in the project, relative to it (vitis_hls runs from the folder)
    for rel in re.findall(r"add_files (?:-tb )?(\S+)", tcl):
        assert (p / rel).exists(), rel
    readme = (p / "README.md").read_text()
    assert "vitis_hls -f build_prj.tcl" in readme and f"tb/{top}_test.cpp" in readme
    test = (p / "tb" / f"{top}_test.cpp").read_text()
    assert f'#include "../firmware/{top}.h"' in test  # found from tb/ without -I flags, as csim_design compiles

