"""A compiled model on disk (model.so + manifest.json + run_model.py) and the object that runs it.

Loading needs only numpy and the TVM runtime: no accelgen IR, no compiler passes, no recompilation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from accelgen.errors import InputError, ModelLoadError

LIBRARY = "model.so"
MANIFEST = "manifest.json"
RUNNER = "run_model.py"
FORMAT = 1  # manifest layout version


def set_threads(threads: int | None) -> None:
    """TVM reads TVM_NUM_THREADS when its thread pool starts; once running, the pool is reconfigured instead."""
    if not threads:
        return
    os.environ["TVM_NUM_THREADS"] = str(int(threads))
    import sys

    if "tvm" in sys.modules:
        import tvm

        tvm.get_global_func("runtime.config_threadpool")(0, int(threads))


class TvmModule:
    """A loaded TVM library with its manifest: `.run(inputs) -> dict`, `.benchmark()`, `.summary()`."""

    def __init__(self, out_dir: Path, manifest: dict):
        self.out_dir = Path(out_dir)
        self.manifest = manifest
        self.device = None
        self._vm = None

    @property
    def target(self) -> str:
        return self.manifest["target"]["name"]

    def load(self) -> TvmModule:
        """Load the library (once). A tvm-cuda one first checks for a GPU and a CUDA compiler (cuda.py)."""
        if self._vm is not None:
            return self
        import tvm
        from tvm import relax

        if self.target == "tvm-cuda":
            from accelgen.backends.tvm.cuda import cuda_device

            self.device = cuda_device()
        else:
            self.device = tvm.cpu()
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(self.out_dir / LIBRARY)), self.device)
        return self

    @property
    def inputs(self) -> list[dict]:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.manifest["outputs"]

    def _arguments(self, inputs: dict[str, np.ndarray]):
        import tvm

        self.load()

        missing = [i["name"] for i in self.inputs if i["name"] not in inputs]
        extra = sorted(set(inputs) - {i["name"] for i in self.inputs})
        if missing or extra:
            raise InputError(f"inputs do not match the model: missing {missing}, unexpected {extra}")
        args = []
        for spec in self.inputs:
            array = np.asarray(inputs[spec["name"]])
            if "fixed" in spec and array.dtype.kind == "f":  # a value: rounded to its type, as accelgen.run does
                array = _raw(spec, array)
            if tuple(array.shape) != tuple(spec["shape"]) or array.dtype != np.dtype(spec["dtype"]):
                raise InputError(f"input {spec['name']!r}: got {array.dtype}{list(array.shape)}, the library was "
                                 f"built for {spec['dtype']}{spec['shape']}")
            args.append(tvm.runtime.tensor(np.ascontiguousarray(array), self.device))
        return args

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = self._arguments(inputs)
        results = self._vm["main"](*args)
        return {spec["name"]: _value(spec, results[i].numpy()) for i, spec in enumerate(self.outputs)}

    def sample_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for spec in self.inputs:
            dtype = np.dtype(spec["dtype"])
            if dtype.kind == "f":
                out[spec["name"]] = rng.standard_normal(spec["shape"]).astype(dtype)
            else:
                out[spec["name"]] = rng.integers(0, 2, spec["shape"]).astype(dtype)
        return out

    def benchmark(self, inputs: dict[str, np.ndarray] | None = None, number: int = 10, repeat: int = 30,
                  min_repeat_ms: int = 50) -> dict:
        """Median latency (seconds) from the VM's time_evaluator, which times the compiled function without
        Python overhead."""
        args = self._arguments(inputs if inputs is not None else self.sample_inputs())
        self._vm.set_input("main", *args)
        timer = self._vm.time_evaluator("invoke_stateful", self.device, number=number, repeat=repeat,
                                        min_repeat_ms=min_repeat_ms)
        result = timer("main")
        return {"median_s": float(result.median), "mean_s": float(result.mean), "std_s": float(result.std),
                "repeat": repeat}

    def summary(self) -> str:
        def fmt(specs):
            return ", ".join(f"{s['name']} {s['dtype']}{s['shape']}" for s in specs)

        m = self.manifest
        plain = m.get("unscheduled_kernels") or []
        tuning = m.get("tuning") or {}
        tuned = [k for k, c in (tuning.get("kernels") or {}).items() if c["use"] == "tuned"]
        where = (f"{m['target']['arch']}, host {m['target']['mcpu']}" if self.target == "tvm-cuda" else
                 f"{m['target']['mcpu']}, {m['threads'] or 'all'} threads")
        return (f"TVM library {self.out_dir / LIBRARY} for {m['target']['name']} ({where}); inputs: {fmt(self.inputs)}; outputs: {fmt(self.outputs)}"
                + (f"; {len(plain)} kernel(s) left unscheduled: {'; '.join(plain)}" if plain else "")
                + (f"; tuned ({tuning['trials']} trials/kernel, database in {tuning['dir']}/): MetaSchedule won "
                   f"{len(tuned)} of {len(tuning['kernels'])} kernels" if tuning else ""))


def _fixed_type(spec: dict):
    from accelgen.ir.types import FixedType, Overflow, Rounding

    f = spec["fixed"]
    return FixedType(f["width"], f["integer"], f["signed"], Rounding(f["rounding"]), Overflow(f["overflow"]))


def _raw(spec: dict, values: np.ndarray) -> np.ndarray:
    """Float values of a fixed-point input as the raw integers the library takes."""
    from accelgen.ir.fixed import quantize_raw

    if np.isnan(values).any():
        raise InputError(f"input {spec['name']!r} has NaN values, which fixed-point types cannot hold")
    return quantize_raw(_fixed_type(spec), values)[0]


def _value(spec: dict, raw: np.ndarray) -> np.ndarray:
    """A fixed-point output's raw integers as float64 values (exact: widths <= 53 bits)."""
    if "fixed" not in spec:
        return raw
    return np.ldexp(raw.astype(np.float64), -_fixed_type(spec).fractional)


def load_compiled(out_dir) -> TvmModule:
    """Load a folder written by compile(), refusing one from another accelgen version."""
    import accelgen

    out_dir = Path(out_dir)
    path = out_dir / MANIFEST
    if not path.is_file() or not (out_dir / LIBRARY).is_file():
        raise ModelLoadError(f"{out_dir} is not a compiled TVM folder (needs {MANIFEST} and {LIBRARY})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: unreadable manifest ({e})") from None
    version = manifest.get("accelgen_version")
    if version != accelgen.__version__ or manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{out_dir} was built by accelgen {version}, this is accelgen {accelgen.__version__}; "
                             "recompile the model (accelgen compile ... --force)")
    set_threads(manifest.get("threads"))
    return TvmModule(out_dir, manifest).load()


RUNNER_SOURCE = '''"""Run the compiled model in this folder with only numpy and the TVM runtime (no accelgen needed).

    python run_model.py [inputs.npz] [--out outputs.npz]

Without inputs it runs random ones and prints the median latency.
"""
import json, sys
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

here = Path(__file__).resolve().parent
manifest = json.loads((here / "manifest.json").read_text())
if manifest["target"]["name"] == "tvm-cuda":
    import tvm.support.nvcc  # registers the compiler that turns the kernels' CUDA source into GPU code at load
    dev = tvm.cuda(0)
    if not dev.exist:
        sys.exit("no CUDA device: this library holds tvm-cuda kernels and needs an NVIDIA GPU with its driver")
else:
    dev = tvm.cpu()
vm = relax.VirtualMachine(tvm.runtime.load_module(str(here / "model.so")), dev)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
if args:
    data = np.load(args[0])
    feeds = {s["name"]: data[s["name"]].astype(s["dtype"]) for s in manifest["inputs"]}
else:
    rng = np.random.default_rng(0)
    feeds = {s["name"]: rng.standard_normal(s["shape"]).astype(s["dtype"]) for s in manifest["inputs"]}
tensors = [tvm.runtime.tensor(feeds[s["name"]], dev) for s in manifest["inputs"]]
results = vm["main"](*tensors)
outputs = {s["name"]: results[i].numpy() for i, s in enumerate(manifest["outputs"])}
for name, value in outputs.items():
    print(name, value.dtype, list(value.shape))
if "--out" in sys.argv:
    np.savez(sys.argv[sys.argv.index("--out") + 1], **outputs)
vm.set_input("main", *tensors)
timer = vm.time_evaluator("invoke_stateful", dev, number=10, repeat=20)
print(f"median latency: {timer('main').median * 1e6:.1f} us")
'''
