"""accelgen's fast C-sim types (csim/ag_fast_types.h) compute the same bits as the Xilinx ap_fixed headers.

One C++ harness is generated and compiled twice, against each header set, with the same source: for each of COMBOS
(three random fixed-point types A, B, C drawn over every rounding and overflow mode, plus an integer width U) it
reads doubles and shift/bit positions and prints the raw bits of every operation the kernels use: conversions
between the types and from doubles and C integers, + - * (then rounded to C), compound assignment, comparisons,
shifts, bit reads and writes, range(), to_int()/to_uint()/to_int64(), ap_int from fixed-point values and doubles,
and ap_uint & |. Both binaries get the same
inputs (a fixed spread that reaches saturation and every rounding tie, then hypothesis); their outputs must be
identical line for line. Whole generated projects are compared too, in test_csim_types.py.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelgen.backends.hls.aptypes import ApTypesNotFoundError, ap_types_dir

TEMPLATES = Path(__file__).resolve().parents[3] / "accelgen" / "templates" / "hls"
Q_MODES = ["AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_ZERO", "AP_RND_INF", "AP_RND_MIN_INF", "AP_RND_CONV"]
O_MODES = ["AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM"]


def _type(rng: random.Random, max_width: int, q: str, o: str) -> tuple:
    w = rng.randint(1, max_width)
    return w, rng.randint(-4, w + 6), rng.random() < 0.6, q, o


def _combos() -> list[tuple]:
    """Every (rounding, overflow) pair as C's modes once, and again as A's; random widths up to 60 bits."""
    rng = random.Random(20261128)
    out = []
    for q in Q_MODES:
        for o in O_MODES:
            a = _type(rng, 60, rng.choice(Q_MODES), rng.choice(O_MODES))
            b = _type(rng, 60, q, o)
            c = _type(rng, 60, q, o)
            out.append((a, b, c, rng.randint(1, 60)))
    out.append(((16, 6, True, "AP_RND", "AP_SAT"), (18, 1, False, "AP_RND_CONV", "AP_SAT"),
                (16, 6, True, "AP_RND_CONV", "AP_SAT"), 27))  # types the quantizer emits
    out.append(((1, 1, True, "AP_TRN", "AP_WRAP"), (1, 0, False, "AP_TRN", "AP_WRAP"),
                (2, 2, True, "AP_RND", "AP_SAT_SYM"), 1))  # the narrowest
    return out


COMBOS = _combos()
OPS = 33  # values printed per input line (checked by the harness's reader)


def _spelling(t: tuple) -> str:
    w, i, s, q, o = t
    return f"ap_{'' if s else 'u'}fixed<{w}, {i}, {q}, {o}>"


def _combo_function(k: int, combo: tuple) -> str:
    a, b, c, uw = combo
    # Comparing a signed with an unsigned value goes wrong in the Xilinx headers (ap_ufixed<46,34>(5) <= -1 and
    # ap_fixed<1,6>(-32) > 0u are true there); the kernels only compare same-signedness values or test for zero,
    # so the harness compares those.
    pairs = [("a", a), ("b", b), ("c9", c)]
    same = [(x, y) for n, (x, tx) in enumerate(pairs) for y, ty in pairs[n + 1:] if tx[2] == ty[2]]
    mixed = " | ".join(f"({x} < {y}) << {8 + 2 * n} | ({x} == {y}) << {9 + 2 * n}" for n, (x, y) in enumerate(same))
    mixed = mixed or "0"
    ints = a[1] >= 1  # to_int() and friends: only with an integer bit (ap_fixed's result is ill-defined otherwise)
    to_ints = ("(u64)a.to_int64()", "(u64)(long long)a.to_int()", "(u64)a.to_uint()") if ints else ("0", "0", "0")
    return f"""
static void combo{k}(double da, double db, double dc, int sh, int bit, int hi, int lo) {{
    typedef {_spelling(a)} A;
    typedef {_spelling(b)} B;
    typedef {_spelling(c)} C;
    bit = bit % {a[0]};
    hi = hi % {a[0]};
    lo = lo % (hi + 1);
    const A a = da;
    const B b = db;
    const C c0 = a, c1 = b, c2 = a + b, c3 = a - b, c4 = a * b, c5 = -a, c6 = a + 3, c7 = a * -2, c8 = 5u - b;
    const C c9 = dc, c10 = 7;
    C c11 = dc, c12 = dc, c13 = dc;
    c11 += a;
    c12 -= b;
    c13 *= b;
    A s1 = a, s2 = a, s3 = a, s4 = a;
    s1 <<= sh;
    s2 >>= sh;
    s3[bit] = 1;
    s4[bit] = 0;
    const A a2 = db;
    const unsigned cmp = (a < a2) | (a == a2) << 1 | (a >= a2) << 2 | (a > 0) << 3 | (a == 0) << 4 |
                         (b != 0) << 5 | (0 < a) << 6 | (b == 0) << 7 | ({mixed});
    ap_uint<{uw}> u = a.range({a[0]} - 1, 0);
    ap_uint<{uw}> u1 = u, u2 = u;
    u1 >>= sh % {uw};  // the Xilinx headers assert on shifts past the width
    u2 <<= sh % {uw};
    const ap_uint<{uw}> u3 = u & 0x5a5au, u4 = u | 3u;
    const ap_int<{uw}> i1 = {'a' if ints else '-5'}, i2 = da, i3 = db;
    out(RAW(a), RAW(b), RAW(c0), RAW(c1), RAW(c2), RAW(c3), RAW(c4), RAW(c5), RAW(c6), RAW(c7), RAW(c8), RAW(c9),
        RAW(c10), RAW(c11), RAW(c12), RAW(c13), RAW(s1), RAW(s2), RAW(s3), RAW(s4), cmp, (u64)(bool)a[bit],
        a.range(hi, lo).to_uint64(), {", ".join(to_ints)}, RAW(u1), RAW(u2), RAW(u3), RAW(u4), RAW(i1), RAW(i2), RAW(i3));
}}
"""


def harness_source() -> str:
    functions = "".join(_combo_function(k, c) for k, c in enumerate(COMBOS))
    table = ",\n    ".join(f"combo{k}" for k in range(len(COMBOS)))
    return rf"""// Generated by tests/backends/hls/test_fast_types.py: the same source builds against both header sets.
#include "ag_types.h"
#include <cstdio>
#include <cstring>
#include <initializer_list>
typedef unsigned long long u64;
#define RAW(x) ((x).range((x).length() - 1, 0).to_uint64())
static void print(std::initializer_list<u64> values) {{
    for (u64 v : values) {{
        printf("%llx ", v);
    }}
    printf("\n");
}}
template <class... T> static void out(T... values) {{
    static_assert(sizeof...(T) == {OPS}, "OPS in the test must count the printed values");
    print({{(u64)values...}});
}}
{functions}
typedef void (*combo_fn)(double, double, double, int, int, int, int);
static const combo_fn combos[] = {{
    {table}
}};

static double from_bits(u64 b) {{
    double d;
    std::memcpy(&d, &b, sizeof d);
    return d;
}}

// Protocol: lines "k a-bits b-bits c-bits sh bit hi lo" (doubles as hex bits); one output line each.
int main() {{
    unsigned k;
    u64 a, b, c;
    int sh, bit, hi, lo;
    while (scanf("%u %llx %llx %llx %d %d %d %d", &k, &a, &b, &c, &sh, &bit, &hi, &lo) == 8) {{
        if (k >= sizeof(combos) / sizeof(combos[0])) {{
            return 2;
        }}
        combos[k](from_bits(a), from_bits(b), from_bits(c), sh, bit, hi, lo);
    }}
    return 0;
}}
"""


def _start_build(workdir: Path, fast: bool) -> tuple[subprocess.Popen, Path]:
    src = workdir / "harness.cpp"
    exe = workdir / ("harness_fast" if fast else "harness_ap")
    # NDEBUG: the Xilinx headers assert when a conversion drops more bits than the source has (ap_fixed<30,-1> to
    # ap_fixed<3,7>); without the assert they read those bits as the sign extension, the exact value's bits.
    flags = ["-std=c++14", "-O0", "-w", "-DNDEBUG", f"-I{TEMPLATES / 'kernels'}", "-isystem", str(ap_types_dir())]
    if fast:
        flags += ["-DAG_CSIM_FAST_TYPES", f"-I{TEMPLATES / 'csim'}"]
    proc = subprocess.Popen(["g++", *flags, str(src), "-o", str(exe)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, exe


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    try:
        ap_types_dir()
    except ApTypesNotFoundError as e:
        pytest.skip(str(e))
    workdir = tmp_path_factory.mktemp("fast_types")
    (workdir / "harness.cpp").write_text(harness_source())
    builds = {fast: _start_build(workdir, fast) for fast in (True, False)}  # side by side
    for proc, _ in builds.values():
        log, _ = proc.communicate()
        assert proc.returncode == 0, log[-4000:]
    return {fast: exe for fast, (_, exe) in builds.items()}


def _bits(x: float) -> str:
    return f"{struct.unpack('<Q', struct.pack('<d', x))[0]:x}"


def _run(exe: Path, lines: list[str]) -> list[str]:
    done = subprocess.run([str(exe)], input="".join(lines), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _values_near(t: tuple, rng: np.random.Generator, n: int) -> np.ndarray:
    """Values around type t's range: exact ones, ties at half an lsb, beyond both ends, zero and tiny ones."""
    w, i, s, _, _ = t
    lsb = 2.0 ** (i - w)
    lo, hi = (-(2.0 ** (i - 1)) if s else 0.0), 2.0 ** (i - int(s))
    span = hi - lo
    raw = rng.uniform(lo - span / 4, hi + span / 4, n)
    exact = np.round(raw / lsb) * lsb
    ties = exact + lsb / 2
    odd = raw + rng.normal(0, lsb, n)
    edges = np.array([0.0, lsb, -lsb, lo, hi - lsb, hi, lo - lsb, hi + lsb / 2, lo - lsb / 2, -lsb / 2, lsb / 2,
                      2.0 ** -1074, -(2.0 ** -1060), 1e300, -1e300, float("inf"), float("-inf")])
    return np.concatenate([exact, ties, odd, edges])


def _lines(k: int, a, b, c, rng: np.random.Generator) -> list[str]:
    n = len(a)
    sh = rng.integers(0, COMBOS[k][0][0] + 3, n)  # past A's width too
    bit, hi, lo = (rng.integers(0, 64, n) for _ in range(3))
    return [f"{k} {_bits(x)} {_bits(y)} {_bits(z)} {s} {p} {h} {low}\n"
            for x, y, z, s, p, h, low in zip(a, b, c, sh, bit, hi, lo)]


def _compare(harnesses, lines: list[str]) -> None:
    fast, ap = _run(harnesses[True], lines), _run(harnesses[False], lines)
    assert len(ap) == len(lines) and len(fast) == len(lines)
    assert all(len(row.split()) == OPS for row in ap)
    bad = [f"{line.strip()}\n  ap_fixed: {x}\n  fast:     {y}" for line, x, y in zip(lines, ap, fast) if x != y]
    assert not bad, f"{len(bad)} of {len(lines)} lines differ, first 5:\n" + "\n".join(bad[:5])


def test_harness_covers_every_mode():
    for slot in (1, 2):
        assert {(t[slot][3], t[slot][4]) for t in COMBOS} >= {(q, o) for q in Q_MODES for o in O_MODES}


def test_fast_types_match_ap_fixed_spread(harnesses):
    rng = np.random.default_rng(7)
    lines = []
    for k, (a, b, c, _) in enumerate(COMBOS):
        va, vb, vc = _values_near(a, rng, 60), _values_near(b, rng, 60), _values_near(c, rng, 60)
        n = min(len(va), len(vb), len(vc))
        lines += _lines(k, rng.permutation(va)[:n], rng.permutation(vb)[:n], rng.permutation(vc)[:n], rng)
        lines += _lines(k, va[:n], vb[:n], vc[:n], rng)  # the edge values meet each other
    _compare(harnesses, lines)


@st.composite
def near_type(draw, t: tuple) -> float:
    """A value on or between type t's grid points, within or just beyond its range, or any double."""
    w, i, _, _, _ = t
    if draw(st.integers(0, 9)) == 0:
        return draw(st.floats(allow_nan=False, width=64))
    raw = draw(st.integers(-(2 ** (w + 1)), 2 ** (w + 1)))
    offset = draw(st.sampled_from([0.0, 0.5, -0.5, 0.25, 0.75, 1 / 3]))
    return (raw + offset) * 2.0 ** (i - w)


@st.composite
def harness_inputs(draw):
    k = draw(st.integers(0, len(COMBOS) - 1))
    a, b, c, _ = COMBOS[k]
    rows = draw(st.lists(st.tuples(near_type(a), near_type(b), near_type(c)), min_size=1, max_size=30))
    return k, rows, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(harness_inputs())
def test_fast_types_match_ap_fixed_hypothesis(harnesses, case):
    k, rows, seed = case
    a, b, c = (np.array(col) for col in zip(*rows))
    _compare(harnesses, _lines(k, a, b, c, np.random.default_rng(seed)))


def test_fast_types_refuse_what_they_lack(tmp_path):
    """Widths over 126 bits and to_int() without an integer bit do not compile (no silent difference)."""
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    flags = ["-std=c++14", "-fsyntax-only", "-DAG_CSIM_FAST_TYPES", f"-I{TEMPLATES / 'kernels'}",
             f"-I{TEMPLATES / 'csim'}"]
    for body, message in [("ap_fixed<127, 5> x = 1;", "1 to 126 bits"),
                          ("ap_fixed<8, 0> x = 0.25; return x.to_int();", "integer bit")]:
        src = tmp_path / "bad.cpp"
        src.write_text(f'#include "ag_types.h"\nint main() {{ {body} return 0; }}\n')
        done = subprocess.run(["g++", *flags, str(src)], capture_output=True, text=True)
        assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
