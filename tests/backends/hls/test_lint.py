"""Synthesizability discipline of every generated firmware file (top function, parameters, weights, kernel
headers) over projects that use every kernel: no dynamic memory, recursion, unbounded loops, floating point,
exceptions, I/O or mutable static state; only ap_types and hls headers included; and a warning-free compile with
`-Wall -Wextra -Werror`, ap_types' own warnings excluded by -isystem.

Why -fsyntax-only and -fno-exceptions: a full compile of firmware whose weights are literal arrays (what synthesis
reads) spends minutes on code generation, because each element of a `static const ap_fixed w[N] = {...}` is a
constructor call and, with exceptions enabled, GCC wraps every one in a cleanup region for the elements already
built (a 6k-element attention header: 37 s at -O0, 1.8 s with -fno-exceptions; the encoder's whole firmware ran
past 9 minutes at -O1). The front end (-fsyntax-only) reports every warning of our code that -Wall -Wextra has;
the optimized build with -fno-exceptions adds the middle-end ones (uninitialized values, array bounds).
"""

import re
import shutil
import subprocess

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from tests.backends.hls.test_elementwise_kernels import (
    elementwise_model,
    movement_model,
)
from tests.backends.hls.test_firmware import FORBIDDEN, firmware_files, strip_comments
from tests.backends.hls.test_transformer_kernels import example_transformer
from tests.quant.datasets import ROOT
from tests.quant.test_transformer import bert_feeds

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

EXTRA_FORBIDDEN = {
    r"\b(float|double)\b": "floating point (kernels are fixed point; literals initialise ap_fixed constants)",
    r"#include\s*<(?!ap_|hls_)": "a system header (only ap_types and hls headers are synthesizable)",
    r"\bstd::": "the standard library",
    r"\b(static_cast|reinterpret_cast)\s*<[^>]*\*": "pointer casts",
}
# a loop bound: constants, CONFIG:: members, template parameters (upper case) and arithmetic on them
STATIC_BOUND = re.compile(r"^(\s|\d|[-+*/()<>]|CONFIG::\w+|\b[A-Z][A-Z0-9_]*\b)+$")


def _quantized(g, calib):
    return accelgen.quantize(accelgen.optimize(g), calib)


def _bert():
    return _quantized(accelgen.load(str(ROOT / "tests" / "data" / "models" / "bert_layer.onnx")), bert_feeds(50, 0))


def _elementwise():
    rng = np.random.default_rng(0)
    return _quantized(elementwise_model(), {k: rng.normal(size=(50, 4, 6)).astype(np.float32) for k in "xz"})


def _movement():
    return _quantized(movement_model(), {"x": np.random.default_rng(0).normal(size=(50, 4, 2)).astype(np.float32)})


def _conv_forms():
    """1-D, grouped and depthwise convolutions and a 1-D max pool (imported here: that module imports this one)."""
    from tests.backends.hls.test_conv_forms import quantized_model

    return quantized_model("seq")


def _example(which):
    return lambda: example_transformer(which)[1]


def _more_kernels():
    """Average and global pools, ReLU6 fused and standalone, the other standalone activations and the extrema."""
    from tests.backends.hls.test_more_kernels import quantized_combined

    return quantized_combined()


def _math():
    """MatMul of activations, Div, Reciprocal, Sqrt, Exp, GatherElements (imported here: that module imports
    this one)."""
    from tests.backends.hls.test_math_kernels import quantized_math

    return quantized_math()


GRAPHS = {"jet_transformer": _example("jet_transformer"), "tiny_transformer": _example("tiny_transformer"),
          "bert_masked": _bert, "elementwise": _elementwise, "movement": _movement, "conv_forms": _conv_forms,
          "more_kernels": _more_kernels, "math": _math}


@pytest.fixture(scope="module")
def projects(tmp_path_factory, jet_project, cnn_project):
    """Generated projects (no C-sim build) covering every kernel; a resource-strategy copy of the jet transformer
    covers dense_resource."""
    root = tmp_path_factory.mktemp("lint")
    out = {"jet_mlp": jet_project, "digits_cnn": cnn_project}
    for name, make in GRAPHS.items():
        out[name] = compile(make(), out_dir=root / name)
    out["jet_transformer_resource"] = compile(GRAPHS["jet_transformer"](), out_dir=root / "resource",
                                              strategy="resource", reuse_factor=2)
    return out


def body_of(code: str, brace: int) -> str:
    """The text between the brace at `brace` and its matching closing brace."""
    depth = 0
    for i in range(brace, len(code)):
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        if depth == 0:
            return code[brace + 1:i]
    return code[brace + 1:]


def lint_problems(project) -> list[str]:
    problems = []
    for path in firmware_files(project):
        code = strip_comments(path.read_text())
        for pattern, what in {**FORBIDDEN, **EXTRA_FORBIDDEN}.items():
            if re.search(pattern, code):
                problems.append(f"{path.name}: {what}")
        for m in re.finditer(r"\bfor\s*\(([^;]*);([^;]*);", code):
            condition = m.group(2).strip()
            bound = re.split(r"<=?", condition, maxsplit=1)
            if len(bound) != 2 or not STATIC_BOUND.match(bound[1]):
                problems.append(f"{path.name}: loop bound {condition!r} is not a compile-time constant")
        # recursion: a function (template or not) whose body names itself as a call
        for m in re.finditer(r"\b(\w+)\s*\([^;{)]*\)\s*(const\s*)?\{", code):
            name, body = m.group(1), body_of(code, m.end() - 1)
            if name not in ("if", "for", "switch", "while") and re.search(rf"\b{name}\s*(<[^;]*?>)?\s*\(", body):
                problems.append(f"{path.name}: {name} calls itself")
    return problems


def test_lint_finds_what_it_looks_for(tmp_path, jet_project):
    """The lint is not vacuous: planted constructs in a copy of a kernel header are reported."""
    copy = tmp_path / "p"
    shutil.copytree(jet_project.path / "firmware", copy / "firmware")
    planted = copy / "firmware" / "kernels" / "ag_planted.h"
    planted.write_text("#include <vector>\nint f(int n) { float x = 0; for (int i = 0; i < n; i++) {} "
                       "return f(n - 1); }\nint *g() { return new int[4]; }\n")
    problems = lint_problems(type("P", (), {"path": copy})())
    found = " | ".join(p for p in problems if p.startswith("ag_planted.h"))
    for what in ("dynamic allocation", "floating point", "system header", "loop bound", "f calls itself"):
        assert what in found, what


@pytest.mark.parametrize("name", [*GRAPHS, "jet_transformer_resource", "jet_mlp", "digits_cnn"])
def test_firmware_has_no_forbidden_constructs(projects, name):
    assert lint_problems(projects[name]) == []


def gxx(project, *flags, sources=None):
    top = project.manifest["top"]
    cmd = ["g++", "-std=c++14", "-Wall", "-Wextra", "-Wno-unknown-pragmas", "-isystem", "ap_types", "-Ifirmware",
           *flags, *(sources or [f"firmware/{top}.cpp"])]
    return subprocess.run(cmd, cwd=project.path, capture_output=True, text=True, check=False, timeout=300)


@needs_gxx
@pytest.mark.parametrize("name", [*GRAPHS, "jet_transformer_resource"])
def test_firmware_front_end_is_warning_free_with_werror(projects, name):
    done = gxx(projects[name], "-fsyntax-only", "-Werror")
    assert done.returncode == 0, done.stderr[-4000:]


@needs_gxx
def test_front_end_check_catches_a_warning_in_a_kernel(projects, tmp_path):
    """Not vacuous: an unused variable and a signed/unsigned comparison planted in a kernel fail the build."""
    copy = tmp_path / "p"
    shutil.copytree(projects["movement"].path, copy)
    kernel = copy / "firmware" / "kernels" / "ag_elementwise.h"
    text = kernel.read_text()
    planted = text.replace("        y[i] = x[index[i]];", "        int unused = 0;\n        if (i < -1) {}\n"
                                                          "        y[i] = x[index[i]];")
    assert planted != text
    kernel.write_text(planted)
    done = gxx(type(projects["movement"])(copy, projects["movement"].manifest), "-fsyntax-only", "-Werror")
    assert done.returncode != 0 and "unused variable" in done.stderr and "sign-compare" in done.stderr


@needs_gxx
def test_optimized_build_has_no_warning_in_our_code_and_the_testbench_passes(projects, tmp_path):
    """-O1 adds the middle-end warnings; those ap_types raises inside its own headers (uninitialized members it
    reads in its operators) are its own, so only locations in our files count."""
    project = projects["jet_transformer"]
    top = project.manifest["top"]
    exe = tmp_path / "tb"
    done = gxx(project, "-O1", "-fno-exceptions", "-Wno-free-nonheap-object", "-o", str(exe),
               sources=[f"tb/{top}_test.cpp", f"firmware/{top}.cpp"])
    assert done.returncode == 0, done.stderr[-4000:]
    ours = [line for line in done.stderr.splitlines()
            if re.match(r"(firmware|tb)/[^:]+:\d+(:\d+)?: (warning|error)", line)]
    assert ours == []
    run = subprocess.run([str(exe)], cwd=project.path, capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0 and " 0 differ" in run.stdout, run.stdout + run.stderr
