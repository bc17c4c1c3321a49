"""Optional MetaSchedule tuning of the fused kernels, with a database kept next to the output and reused.

    compile(graph, target="tvm-cpu", out_dir="lib", tune_trials=64)   # writes lib/tuning/

For every fused kernel we keep whichever of two schedules measures faster on this machine: ours (schedules.py,
no search) or the best MetaSchedule found. Tuning records go to `tuning/database_*.json` (MetaSchedule's JSON
database) and each kernel's decision with both timings to `tuning/choices.json`, keyed by the kernel's structural
hash, so compiling the same model again only reads them back: no search, no measurement.

MetaSchedule needs psutil, cloudpickle and (for its cost model) xgboost: `pip install accelgen[tune]`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi

from accelgen.errors import OptionError

TUNING_DIR = "tuning"
CHOICES = "choices.json"
BUILDER_TIMEOUT_S = 180.0  # a fresh worker imports TVM and builds; the default 30 s is too short on 2 cores
RUNNER_TIMEOUT_S = 60.0
TRIALS_PER_ITERATION = 16
MARGIN = 0.02  # the tuned kernel replaces ours only when it measures at least this much faster (timing noise)


def check_tuning_dependencies() -> None:
    missing = [name for name in ("psutil", "cloudpickle") if importlib.util.find_spec(name) is None]
    if missing:
        raise OptionError(f"--tune-trials needs the Python package(s) {', '.join(missing)} (MetaSchedule's worker "
                          "pools); install them with `pip install accelgen[tune]`")


def _load_cpu_intrinsics_only() -> None:
    """MetaSchedule's TuneContext imports tvm.s_tir.tensor_intrin, whose package import parses every target's
    intrinsics in TVMScript (CUDA's alone: 15-40 s on 2 cores). A CPU search needs only the x86 ones, so the
    package is registered without running its __init__ and only x86 is loaded; other submodules still import on
    demand (the DLight CUDA rules import theirs)."""
    import importlib
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = name
    sys.modules[name] = package
    importlib.import_module(f"{name}.x86")


def build_kernel(mod: tvm.IRModule, target, _params=None):
    """MetaSchedule's builder, minus the import of tvm.s_tir.tensor_intrin that its default runs in every fresh
    worker (~15-50 s, longer than the build itself); fp32 CPU schedules use no tensor intrinsics."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def kernel_key(func) -> str:
    """A stable name for a kernel: its structural hash (the same one MetaSchedule's database uses)."""
    return f"{int(tvm_ffi.structural_hash(_workload(func))) & (2**64 - 1):016x}"


def _workload(func) -> tvm.IRModule:
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    return _normalize_mod(func.without_attr("global_symbol") if func.attrs and "global_symbol" in func.attrs
                          else func)


def _kernels(mod: tvm.IRModule) -> dict[str, tuple]:
    """key -> (global var, prim func) for every kernel TVM generated, one entry per distinct kernel."""
    found = {}
    for gvar, func in mod.functions.items():
        if type(func).__name__ == "PrimFunc" and not (func.attrs and "schedule_rule" in func.attrs):
            found.setdefault(kernel_key(func), []).append((gvar, func))
    return found


class Tuner:
    """Tunes, measures and chooses per kernel; reads and writes `out_dir/tuning/`."""

    def __init__(self, out_dir: Path, trials: int, threads: int | None):
        if trials < 1:
            raise OptionError(f"tune_trials must be >= 1, got {trials}")
        self.dir = Path(out_dir) / TUNING_DIR
        self.trials, self.threads = int(trials), threads
        self.log: list[str] = []

    # -- the choices file --------------------------------------------------------------------------------------
    def _load_choices(self) -> dict:
        path = self.dir / CHOICES
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except ValueError:
            return {}

    def _save_choices(self, choices: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / CHOICES).write_text(json.dumps(choices, indent=2, sort_keys=True) + "\n")

    def _database(self):
        from tvm.s_tir import meta_schedule as ms

        self.dir.mkdir(parents=True, exist_ok=True)
        return ms.database.JSONDatabase(path_workload=str(self.dir / "database_workload.json"),
                                        path_tuning_record=str(self.dir / "database_tuning_record.json"),
                                        module_equality="structural")

    # -- the search --------------------------------------------------------------------------------------------
    def _search(self, todo: dict[str, list], target, database) -> None:
        from tvm.s_tir import meta_schedule as ms

        _load_cpu_intrinsics_only()
        workers = max(1, int(self.threads or os.cpu_count() or 1))
        # the default population (512 candidates, 4 generations, scored by the cost model) costs more than the
        # measurements themselves at the trial counts used here; scale it with the budget
        population = max(32, min(512, 8 * self.trials))

        def strategy():
            return ms.search_strategy.EvolutionarySearch(population_size=population,
                                                         init_min_unmeasured=min(50, population // 2),
                                                         genetic_num_iters=2 if self.trials < 64 else 4)

        tasks = [ms.TuneContext(mod=_workload(sites[0][1]), target=target, space_generator="post-order-apply",
                                search_strategy=strategy(), task_name=sites[0][0].name_hint, num_threads=workers)
                 for sites in todo.values()]
        cost_model = "xgb" if importlib.util.find_spec("xgboost") else "random"
        builder = ms.builder.LocalBuilder(max_workers=workers, timeout_sec=BUILDER_TIMEOUT_S, f_build=build_kernel)
        runner = ms.runner.LocalRunner(timeout_sec=RUNNER_TIMEOUT_S,
                                       evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1,
                                                                                  min_repeat_ms=20))
        per_task = max(1, self.trials)
        ms.tune_tasks(tasks=tasks, task_weights=[float(len(s)) for s in todo.values()],
                      work_dir=str(self.dir / "logs"), max_trials_global=per_task * len(tasks),
                      max_trials_per_task=per_task, num_trials_per_iter=min(TRIALS_PER_ITERATION, per_task),
                      builder=builder, runner=runner, database=database, cost_model=cost_model)

    # -- the decision ------------------------------------------------------------------------------------------
    def apply(self, legalized: tvm.IRModule, ours: tvm.IRModule, target) -> tvm.IRModule:
        """`ours` is `legalized` after our schedules; returns it with each kernel replaced by the tuned schedule
        where that measured faster. Kernels decided before (choices.json) are not searched or measured again."""
        check_tuning_dependencies()
        choices = self._load_choices()
        kernels = _kernels(legalized)
        todo = {k: v for k, v in kernels.items() if k not in choices or choices[k].get("trials", 0) < self.trials}
        if not todo:
            self.log.append(f"tuning: {len(kernels)} kernel(s), all decided before ({self.dir / CHOICES})")
            return self._choose(legalized, ours, target, kernels, choices, self._database())
        database = self._database()
        t0 = time.perf_counter()
        self._search(todo, target, database)
        self.log.append(f"tuning: searched {len(todo)} kernel(s), {self.trials} trials each, "
                        f"{time.perf_counter() - t0:.0f} s")
        for key, sites in todo.items():
            gvar, func = sites[0]
            tuned = _tuned_func(database, func, target)
            ours_s = time_kernel(ours[gvar], target)
            tuned_s = time_kernel(tuned, target) if tuned is not None else None
            use = "tuned" if tuned_s is not None and tuned_s < ours_s * (1 - MARGIN) else "ours"
            choices[key] = {"kernel": gvar.name_hint, "ours_s": ours_s, "tuned_s": tuned_s, "use": use,
                            "trials": self.trials}
        self._save_choices(choices)
        return self._choose(legalized, ours, target, kernels, choices, database)

    def _choose(self, legalized, ours, target, kernels, choices, database) -> tvm.IRModule:
        result = ours
        for key, sites in kernels.items():
            if choices.get(key, {}).get("use") != "tuned":
                continue
            tuned = _tuned_func(database, sites[0][1], target)
            if tuned is None:  # the database lost the record: keep ours
                continue
            for gvar, func in sites:
                result[gvar] = tuned.with_attrs(func.attrs) if func.attrs else tuned
        return result

    def summary(self) -> dict:
        choices = self._load_choices()
        return {"dir": TUNING_DIR, "trials": self.trials, "log": self.log,
                "kernels": {c["kernel"]: {k: c[k] for k in ("use", "ours_s", "tuned_s")} for c in choices.values()}}


def _tuned_func(database, func, target):
    """The best schedule of `func` in the database, as a PrimFunc, or None."""
    sch = database.query_schedule(_workload(func), target=target, workload_name="main")
    if sch is None:
        return None
    return sch.mod["main"].without_attr("global_symbol")


def time_kernel(func, target, seconds: float = 0.05) -> float:
    """Median seconds of one kernel on random inputs, built on its own."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    lib = tvm.compile(_normalize_mod(func), target=target).jit()
    dev = tvm.cpu()
    rng = np.random.default_rng(0)
    args = []
    for info in ArgInfo.from_prim_func(func):
        shape, dtype = [int(d) for d in info.shape], str(info.dtype)
        data = rng.standard_normal(shape).astype(dtype) if "float" in dtype else np.zeros(shape, dtype)
        args.append(tvm.runtime.tensor(data, dev))
    timer = lib.time_evaluator("main", dev, number=1, repeat=15, min_repeat_ms=max(1, int(seconds * 1000 / 15)))
    return float(timer(*args).median)
