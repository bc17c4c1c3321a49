"""FixedType quantization is bit-exact with the real Xilinx ap_fixed headers.

One C++ oracle is generated and compiled with g++ once per session (and cached in the pytest cache, keyed by its
source, the compiler and the headers): it instantiates `ap_[u]fixed<W,I,Q,O> x = double` for every rounding mode x
every overflow mode x signed/unsigned over a spread of (W, I) pairs, reads "combo-index double-bits" pairs and
answers the raw W-bit pattern. The headers are the ones inside the installed hls4ml package (never copied here).

Conversion by ap_fixed only depends on W, I through F2 - F and I - I2 (see ap_fixed_base(double)), so scaling the
input by 2**k is the same as moving I by k: the (W, I) pairs below are chosen for the code paths they reach (W = 1,
small widths, W = 53 and 62 around the 54-bit mantissa register, I < 0, I = 0, I = W, I > W), not to be dense.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelgen.ir.fixed import quantize, quantize_raw
from accelgen.ir.types import FixedType, Overflow, Rounding

PAIRS = [
    (1, -2), (1, 1), (1, 4),
    (2, 0), (2, 2),
    (3, -2), (3, 1), (3, 6),
    (4, 0), (4, 2), (4, 7),
    (5, 3),
    (8, -2), (8, 4), (8, 8), (8, 11),
    (12, 6), (16, 6), (18, 9), (24, 24), (32, 16), (40, 43), (53, 20), (62, 31),
    (8, -1020),  # lsb 2**-1028: reaches the headers' reading of subnormal doubles
]
COMBOS = [(w, i, s, q, o) for (w, i) in PAIRS for s in (True, False) for q in Rounding for o in Overflow]
TYPES = [FixedType(w, i, s, q, o) for (w, i, s, q, o) in COMBOS]
INDEX = {t: k for k, t in enumerate(TYPES)}

_PRELUDE = r"""
#include <ap_fixed.h>
#include <cstdio>
#include <cstring>
#include <vector>
typedef unsigned long long u64;
typedef u64 (*conv_fn)(double);
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O> struct Conv;
template <int W, int I, ap_q_mode Q, ap_o_mode O> struct Conv<W, I, true, Q, O> {
  static u64 f(double d) { ap_fixed<W, I, Q, O> x = d; return (u64)x.V.get_VAL() & (~0ULL >> (64 - W)); }
};
template <int W, int I, ap_q_mode Q, ap_o_mode O> struct Conv<W, I, false, Q, O> {
  static u64 f(double d) { ap_ufixed<W, I, Q, O> x = d; return (u64)x.V.get_VAL() & (~0ULL >> (64 - W)); }
};
"""

_MAIN = r"""
// Protocol: "n\n" then n lines "combo-index double-bits-hex"; answers n lines of raw bits in hex, then flushes.
int main() {
  unsigned long n;
  while (scanf("%lu", &n) == 1) {
    std::vector<unsigned> k(n);
    std::vector<u64> b(n);
    for (unsigned long i = 0; i < n; ++i)
      if (scanf("%u %llx", &k[i], &b[i]) != 2) return 3;
    for (unsigned long i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, &b[i], sizeof d);
      printf("%llx\n", lookup(k[i])(d));
    }
    fflush(stdout);
  }
  return 0;
}
"""


def _cpp_sources(parts: int) -> list[str]:
    """`parts` translation units (compiled in parallel): each holds a table for a slice of COMBOS; the last has main."""
    chunk = -(-len(COMBOS) // parts)
    slices = [COMBOS[k:k + chunk] for k in range(0, len(COMBOS), chunk)]
    sources = []
    for p, combos in enumerate(slices):
        rows = ",\n".join(f"  &Conv<{w},{i},{'true' if s else 'false'},AP_{q.value},AP_{o.value}>::f"
                          for (w, i, s, q, o) in combos)
        sources.append(f"{_PRELUDE}\nextern const conv_fn table{p}[] = {{\n{rows}\n}};\n")
    decls = "".join(f"extern const conv_fn table{p}[];\n" for p in range(len(slices)))
    lookup = (f"static conv_fn lookup(unsigned k) {{\n  if (k >= {len(COMBOS)}u) {{ fprintf(stderr, \"bad index\\n\"); "
              f"std::exit(2); }}\n  switch (k / {chunk}u) {{\n"
              + "".join(f"    case {p}: return table{p}[k % {chunk}u];\n" for p in range(len(slices) - 1))
              + f"    default: return table{len(slices) - 1}[k % {chunk}u];\n  }}\n}}\n")
    sources[-1] += "#include <cstdlib>\n" + decls + lookup + _MAIN
    return sources


def _compile(workdir, ap_dir, sources) -> str:
    cxx = shutil.which("g++")
    flags = ["-O0", "-std=c++14", "-fno-exceptions", "-fno-rtti", "-w", "-pipe", f"-I{ap_dir}"]
    objs, procs = [], []
    for p, src in enumerate(sources):
        cpp, obj = workdir / f"oracle{p}.cpp", workdir / f"oracle{p}.o"
        cpp.write_text(src)
        objs.append(str(obj))
        procs.append(subprocess.Popen([cxx, *flags, "-c", str(cpp), "-o", str(obj)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            pytest.fail(f"compiling the ap_fixed oracle failed:\n{out[-4000:]}")
    exe = workdir / f"oracle.{os.getpid()}.tmp"
    subprocess.run([cxx, *objs, "-o", str(exe)], check=True)
    return str(exe)


class Oracle:
    """A running oracle process: raw(combo indices, float64 values) -> uint64 raw bit patterns."""

    def __init__(self, exe: str):
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1 << 20)

    def raw(self, combos, values) -> np.ndarray:
        combos = np.asarray(combos, dtype=np.int64).ravel()
        bits = np.ascontiguousarray(values, dtype=np.float64).ravel().view(np.uint64)
        assert combos.shape == bits.shape
        lines = [f"{len(bits)}\n"] + [f"{k} {b:x}\n" for k, b in zip(combos.tolist(), bits.tolist())]
        self.proc.stdin.write("".join(lines))
        self.proc.stdin.flush()
        out = [self.proc.stdout.readline() for _ in range(len(bits))]
        if any(not line for line in out):
            raise RuntimeError(f"ap_fixed oracle died (exit status {self.proc.poll()})")
        return np.array([int(line, 16) for line in out], dtype=np.uint64)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def oracle(request, tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH: cannot build the ap_fixed oracle")
    from accelgen.backends.hls.aptypes import ApTypesNotFoundError, ap_types_dir

    try:
        ap_dir = ap_types_dir()
    except ApTypesNotFoundError as e:
        pytest.skip(str(e))
    parts = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
    sources = _cpp_sources(parts)
    key = hashlib.sha256()
    for src in sources:
        key.update(src.encode())
    key.update(subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.encode())
    for header in sorted(ap_dir.rglob("*.h")):
        key.update(header.name.encode() + header.read_bytes())
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    home = cache.mkdir("accelgen-apfixed-oracle") if cache is not None else tmp_path_factory.mktemp("oracle")
    exe = home / f"oracle-{key.hexdigest()[:16]}"
    if not exe.exists():
        built = _compile(tmp_path_factory.mktemp("oracle-build"), ap_dir, sources)
        os.replace(built, exe)  # atomic: parallel sessions never see a half-written binary
        for stale in home.glob("oracle-*"):
            if stale != exe:
                stale.unlink(missing_ok=True)
    o = Oracle(str(exe))
    yield o
    o.close()


def _ours_unsigned(t: FixedType, values) -> np.ndarray:
    raw, _ = quantize_raw(t, values)
    return (raw.astype(np.uint64)) & np.uint64((1 << t.width) - 1)


def _assert_same(oracle: Oracle, combos, values, limit=15):
    """Compare raw bits of all (combo, value) pairs with ours, and the float output where width <= 53."""
    combos = np.asarray(combos, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    want = oracle.raw(combos, values)
    bad = []
    for k in np.unique(combos):
        t = TYPES[k]
        sel = np.flatnonzero(combos == k)
        got = _ours_unsigned(t, values[sel])
        for j in np.flatnonzero(got != want[sel]):
            bad.append(f"{t.cpp()} <- {float(values[sel][j]).hex()} ({values[sel][j]!r}): "
                       f"ap_fixed raw {int(want[sel][j]):#x}, ours {int(got[j]):#x}")
        if t.width <= 53 and not bad:
            w = want[sel].astype(np.int64)
            if t.signed:
                w = np.where(w >= 1 << (t.width - 1), w - (1 << t.width), w)
            expect = np.ldexp(w.astype(np.float64), -t.fractional)
            np.testing.assert_array_equal(t.quantize(values[sel]), expect, err_msg=t.cpp())
    assert not bad, f"{len(bad)} mismatches with ap_fixed, first {limit}:\n" + "\n".join(bad[:limit])


# ---------------------------------------------------------------------------------------------------------- inputs

SPECIALS = np.array([0.0, -0.0, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308,
                     -2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, -1.7976931348623157e308,
                     2.0 ** 1023, -(2.0 ** 1023), 2.0 ** 64, -(2.0 ** 64), 2.0 ** 63, 1.0, -1.0, 0.5, -0.5, 0.25,
                     -0.25, 1e-300, -1e-300, 1e300, -1e300, 3.0, -3.0, 0.75, -0.75, 1.5, -1.5])


def _interesting(t: FixedType, rng: np.random.Generator, n_random: int = 40) -> np.ndarray:
    """Values that probe t: grid points, exact ties and their neighbours near 0 and the range edges, huge, tiny."""
    f, w = t.fractional, t.width
    lo, hi = t.raw_min, t.raw_max
    ks = np.array(sorted({*range(-3, 4), *range(lo - 3, lo + 4), *range(hi - 3, hi + 4),
                          -hi - 1, -hi, 1 << w, -(1 << w), (1 << w) + 1, hi + (1 << w), lo - (1 << w)}),
                  dtype=np.float64)
    wide = rng.integers(max(lo - (2 << w), -(1 << 62)), min(hi + (2 << w), 1 << 62), n_random, endpoint=True)
    ks = np.concatenate([ks, wide.astype(np.float64)])
    grid = np.ldexp(ks, -f)
    ties = np.ldexp(2 * ks + 1, -f - 1)  # exactly half an lsb above a grid point (while exact in float64)
    quarters = np.ldexp(np.concatenate([4 * ks + 1, 4 * ks + 3]), -f - 2)
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf),
                           np.nextafter(grid, np.inf), np.nextafter(grid, -np.inf)])
    edges = np.array([2.0 ** (t.integer - 1), 2.0 ** t.integer, 2.0 ** (t.integer + 1), 2.0 ** (-f - 1),
                      2.0 ** (-f - 2), 2.0 ** (-f - 60), 2.0 ** (t.integer + 60)])
    edges = np.concatenate([edges, -edges])
    uniform = rng.uniform(t.min - (t.max - t.min), 2 * t.max - t.min + t.lsb, n_random)
    scales = np.ldexp(rng.uniform(-1, 1, n_random), rng.integers(-f - 70, t.integer + 70, n_random))
    bits = rng.integers(0, 1 << 63, n_random, dtype=np.int64).view(np.float64)
    bits = np.where(np.isnan(bits), 0.0, bits) * np.where(rng.random(n_random) < 0.5, -1.0, 1.0)
    return np.concatenate([SPECIALS, grid, ties, quarters, near, edges, uniform, scales, bits])


def test_bit_exact_with_ap_fixed_all_modes(oracle):
    """Every (W, I, signed, Q, O) combination against ap_fixed on ~750 chosen and seeded-random values each (~1M in one batch)."""
    rng = np.random.default_rng(20240611)
    combos, values = [], []
    for k, t in enumerate(TYPES):
        v = _interesting(t, rng)
        combos.append(np.full(v.shape, k))
        values.append(v)
    _assert_same(oracle, np.concatenate(combos), np.concatenate(values))


@st.composite
def _cases(draw):
    k = draw(st.integers(0, len(TYPES) - 1))
    t = TYPES[k]
    lo, hi = t.raw_min - (1 << t.width), t.raw_max + (1 << t.width)
    edge = sorted({t.raw_min - 2, t.raw_min - 1, t.raw_min, t.raw_min + 1, t.raw_max - 1, t.raw_max, t.raw_max + 1,
                   t.raw_max + 2, -t.raw_max, -2, -1, 0, 1, 2})
    grid_int = st.one_of(st.integers(lo, hi), st.sampled_from(edge)).map(float)
    value = st.one_of(
        st.floats(allow_nan=False),
        st.floats(allow_nan=False, min_value=t.min * 4 - 1, max_value=t.max * 4 + 1),
        grid_int.map(lambda i: math.ldexp(i, -t.fractional)),  # on the grid
        grid_int.map(lambda i: math.ldexp(2 * i + 1, -t.fractional - 1)),  # exact ties
        st.tuples(grid_int, st.integers(1, 2 ** 20 - 1)).map(  # a few bits below the lsb
            lambda p: math.ldexp(p[0] * 2 ** 20 + p[1], -t.fractional - 20)),
        st.tuples(grid_int, st.sampled_from([math.inf, -math.inf])).map(  # next to ties and grid points
            lambda p: math.nextafter(math.ldexp(p[0], -t.fractional - 1), p[1])),
    )
    return k, draw(st.lists(value, min_size=1, max_size=64))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(_cases(), min_size=1, max_size=8))
def test_bit_exact_hypothesis(oracle, cases):
    combos = np.concatenate([np.full(len(v), k) for k, v in cases])
    values = np.concatenate([np.array(v, dtype=np.float64) for _, v in cases])
    _assert_same(oracle, combos, values)


def test_nan_raises():
    t = FixedType(16, 6)
    with pytest.raises(ValueError, match="NaN"):
        t.quantize([1.0, math.nan])
    with pytest.raises(ValueError, match="NaN"):
        quantize_raw(t, math.nan)


def test_infinity_saturates_like_two_to_the_1024():
    """ap_fixed reads +-inf as +-2**1024: SAT modes clamp, WRAP and SAT_ZERO give 0."""
    x = [math.inf, -math.inf]
    assert list(FixedType(8, 4, overflow=Overflow.SAT).quantize(x)) == [127 / 16, -8.0]
    assert list(FixedType(8, 4, overflow=Overflow.SAT_SYM).quantize(x)) == [127 / 16, -127 / 16]
    assert list(FixedType(8, 4, signed=False, overflow=Overflow.SAT).quantize(x)) == [255 / 16, 0.0]
    assert list(FixedType(8, 4).quantize(x)) == [0.0, 0.0]
    assert list(FixedType(8, 4, overflow=Overflow.SAT_ZERO).quantize(x)) == [0.0, 0.0]


def test_subnormals_read_like_the_headers():
    """ap_fixed_base(double) reads a subnormal 0.m * 2**-1022 as 1.m * 2**-1023 (visible only when F > 1000)."""
    t = FixedType(8, -1020, signed=False)  # raw = floor(x * 2**1028)
    x = [5e-324, 2.0 ** -1023, 2.225073858507201e-308, 2.0 ** -1022]  # the last is the smallest normal double
    assert quantize_raw(t, x)[0].tolist() == [32, 48, 63, 64]  # exact arithmetic would give 0, 32, 31, 64
    assert quantize_raw(FixedType(8, 4), [5e-324, -5e-324])[0].tolist() == [0, -1]  # elsewhere only the sign counts


def test_ap_types_dir(monkeypatch):
    from accelgen.backends.hls import aptypes
    from accelgen.errors import AccelgenError

    d = aptypes.ap_types_dir()
    assert (d / "ap_fixed.h").is_file() and d.name == "ap_types"
    aptypes.ap_types_dir.cache_clear()
    monkeypatch.setattr(aptypes.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(aptypes.ApTypesNotFoundError, match="pip install hls4ml") as err:
            aptypes.ap_types_dir()
        assert isinstance(err.value, AccelgenError)
    finally:
        aptypes.ap_types_dir.cache_clear()


def test_overflow_mask_and_shapes():
    t = FixedType(8, 4, overflow=Overflow.SAT)
    x = np.array([[7.9, 8.0], [-8.0, -8.1]])
    raw, ovf = quantize_raw(t, x)
    assert raw.shape == x.shape and raw.dtype == np.int64
    assert ovf.tolist() == [[False, True], [False, True]]
    v, ovf2 = quantize(t, x)
    assert v.tolist() == [[7.875, 7.9375], [-8.0, -8.0]] and (ovf2 == ovf).all()
    assert quantize_raw(t, 3.0)[0].shape == ()  # scalars in, 0-d arrays out
    assert t.quantize(np.float32(0.1)) == 0.0625


def test_width_limits():
    with pytest.raises(ValueError, match="62"):
        quantize_raw(FixedType(63, 10), [1.0])
    with pytest.raises(ValueError, match="53"):
        FixedType(54, 10).quantize([1.0])
    assert quantize_raw(FixedType(62, 31), [2.0 ** 29, 2.0 ** 30])[0].tolist() == [1 << 60, -(1 << 61)]
    assert quantize_raw(FixedType(62, 31, overflow=Overflow.SAT), [2.0 ** 30])[0].tolist() == [(1 << 61) - 1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
