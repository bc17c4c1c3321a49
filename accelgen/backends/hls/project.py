"""A generated HLS project: its folder, its configuration, and C simulation through g++ and ctypes.

`build_csim()` compiles the firmware with csim/accelgen_csim.cpp into a shared library once (-O2), named by a hash
of everything that goes into it, so a rebuilt or copied project reuses it; `predict()` runs batches through it. The
library reads the weights from firmware/weights/*.bin when it is loaded (the literals are for synthesis), so large
models compile in seconds.

Two builds of the same sources exist: `types="fast"` (the default) compiles the fixed-point types from accelgen's
integer-based csim/ag_fast_types.h, `types="ap"` from the Xilinx ap_types headers that Vitis uses. They compute the
same bits (the tests compare them); the fast one compiles several times faster."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from accelgen.errors import AccelgenError, InputError

# -Wno-free-nonheap-object: GCC 12 runs that warning's analysis quadratically over the static initialisers of
# large ap_fixed constant arrays (40 s instead of 4 s for the jet MLP); the firmware never frees anything.
CXX_FLAGS = ("-std=c++14", "-O2", "-Wno-free-nonheap-object", "-shared", "-fPIC", "-pthread", "-isystem", "ap_types",
             "-Ifirmware")
TYPE_FLAGS = {"fast": ("-DAG_CSIM_FAST_TYPES", "-Icsim"), "ap": ()}
# The widest declared type the fast types take (int64 tensors); a product of two such values would pass their 126
# bits, which their static_assert turns into a compile error naming types="ap" (no kernel multiplies two of them).
FAST_TYPES_MAX_BITS = 64


class CsimBuildError(AccelgenError):
    """g++ is missing or failed on the generated C++ (the latter is a bug in accelgen)."""


class HlsProject:
    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._libs = {}

    @property
    def top(self) -> str:
        return self.manifest["top"]

    def _sources(self) -> list[Path]:
        extra = [p for p in (self.path / "tb" / "load_weights.h", *(self.path / "csim").glob("*.[ch]*"))
                 if p.is_file()]
        return sorted([*(self.path / "firmware").rglob("*.h"), *(self.path / "firmware").rglob("*.cpp"), *extra])

    def csim_types(self, types: str = "fast") -> str:
        """The type library a C-sim build with `types` uses: "fast" falls back to "ap" for a design with a type wider
        than the fast types take (the manifest's widest_type_bits)."""
        if types not in TYPE_FLAGS:
            raise InputError(f"C-sim types must be one of {sorted(TYPE_FLAGS)}, not {types!r}")
        fits = self.manifest.get("widest_type_bits", FAST_TYPES_MAX_BITS + 1) <= FAST_TYPES_MAX_BITS
        return "ap" if types == "fast" and not (fits and (self.path / "csim" / "ag_fast_types.h").is_file()) else types

    def build_csim(self, types: str = "fast") -> Path:
        """The C-simulation shared library, compiled if no build of these exact sources exists yet. `types`: "fast"
        (accelgen's integer-based fixed-point types) or "ap" (the Xilinx headers)."""
        flags = (*CXX_FLAGS, *TYPE_FLAGS[self.csim_types(types)])
        digest = hashlib.sha256(" ".join(flags).encode())
        for src in self._sources():
            digest.update(src.relative_to(self.path).as_posix().encode() + b"\0" + src.read_bytes())
        lib = self.path / "csim" / "build" / f"libcsim_{digest.hexdigest()[:16]}.so"
        if not lib.is_file():
            cxx = shutil.which(os.environ.get("CXX", "g++"))
            if cxx is None:
                raise CsimBuildError("C simulation needs g++ (or $CXX), which is not on PATH")
            lib.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=lib.parent, suffix=".so", delete=False) as tmp:
                partial = Path(tmp.name)
            cmd = [cxx, *flags, "csim/accelgen_csim.cpp", "-o", str(partial)]  # it includes the firmware
            done = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                partial.unlink(missing_ok=True)
                detail = " | ".join(done.stderr.strip().splitlines()[:20])
                raise CsimBuildError(f"g++ failed on the generated project {self.path} (a bug in accelgen): {detail}")
            partial.replace(lib)  # atomic: a concurrent build never sees half a library
        return lib

    def _library(self, types: str):
        types = self.csim_types(types)
        if types not in self._libs:
            lib = ctypes.CDLL(str(self.build_csim(types)))
            ports = len(self.manifest["inputs"]) + len(self.manifest["outputs"])
            lib.accelgen_csim_run.argtypes = [ctypes.POINTER(ctypes.c_double)] * ports + [ctypes.c_long]
            lib.accelgen_csim_run.restype = ctypes.c_int
            lib.accelgen_csim_load_weights.argtypes = [ctypes.c_char_p]
            lib.accelgen_csim_load_weights.restype = ctypes.c_char_p
            missing = lib.accelgen_csim_load_weights(os.fsencode(self.path / "firmware" / "weights"))
            if missing is not None:
                raise InputError(f"the weight file firmware/weights/{missing.decode()}.bin of {self.path} is missing "
                                 "or has the wrong size; regenerate the project")
            self._libs[types] = lib
        return self._libs[types]

    def predict(self, inputs: dict, types: str = "fast") -> dict:
        """C simulation of a batch: each input has a leading batch dimension N in place of the graph's batch
        dimension of 1 (or the graph's whole shape after N otherwise); outputs likewise. `types` as build_csim's."""
        specs = self.manifest["inputs"]
        missing = [s["name"] for s in specs if s["name"] not in inputs]
        extra = [k for k in inputs if k not in {s["name"] for s in specs}]
        if missing or extra:
            raise InputError(f"predict needs inputs {[s['name'] for s in specs]}; missing {missing}, unknown {extra}")
        arrays, n = [], None
        for spec in specs:
            x = np.ascontiguousarray(inputs[spec["name"]], np.float64)
            sample = _sample_shape(spec["shape"])
            if x.ndim != len(sample) + 1 or tuple(x.shape[1:]) != sample:
                raise InputError(f"input {spec['name']!r}: expected shape (N, {', '.join(map(str, sample))}), "
                                 f"got {x.shape}")
            if np.isnan(x).any():
                raise InputError(f"input {spec['name']!r} holds NaN, which fixed point cannot represent")
            if n is not None and x.shape[0] != n:
                raise InputError("all inputs need the same batch size")
            n = x.shape[0]
            arrays.append(x)
        outs = {s["name"]: np.zeros((n, *_sample_shape(s["shape"])), np.float64) for s in self.manifest["outputs"]}
        pointers = [a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in [*arrays, *outs.values()]]
        if self._library(types).accelgen_csim_run(*pointers, n) != 0:
            raise CsimBuildError("the C simulation could not start its thread (pthread_create failed)")
        return outs

    def summary(self) -> str:
        m = self.manifest
        o = m["options"]
        head = (f"HLS project {self.path} (top {m['top']}, part {o['part']}, clock {o['clock_ns']} ns, "
                f"strategy {o['strategy']}, reuse {o['reuse_factor']}, io {o['io']})")
        lines = [head]
        for layer in m["layers"]:
            lines.append(f"  {layer['index']:>3} {layer['op']:<10} {layer['node']}: {layer['kernel']}")
        lines.append(f"  multipliers (upper bound, before synthesis): {m['multipliers']}; "
                     f"part DSPs: {m['part']['dsp']}")
        lines.append(f"  run: cd {self.path} && vitis_hls -f build_prj.tcl")
        return "\n".join(lines)

    @classmethod
    def open(cls, path) -> HlsProject:
        path = Path(path)
        return cls(path, json.loads((path / "manifest.json").read_text()))


def _sample_shape(shape) -> tuple:
    shape = tuple(shape)
    return shape[1:] if shape and shape[0] == 1 else shape
