"""Trials per hour with 1, 2, 4 ... trials sharing one device, through the real sweep path.

For each level k the same small sweep (one ε target, fixed quickstart settings, no search:
every trial does the same work) runs with `resources: gpus_per_worker = 1/k,
max_concurrent_trials = k`, into a throwaway results store. The search space is built as
a mapping and validated by the same `spec_from_mapping` a YAML file goes through, then
`inspect_sweep` and `run_sweep`, as `dpsweep sweep` does.

Two rates per level: over the trial phase (first trial start to last trial end, seen from
the driver: what k changes) and over the whole sweep call (which adds starting Ray,
reading and tokenising the corpus and the shared frozen-layer cache, the same at every k).
On a GPU, Ray gives each trial its share of the one GPU (CUDA_VISIBLE_DEVICES, which torch
calls cuda:0); each trial reports its own process' peak GPU memory. With device "cpu" the
levels share the CPUs instead (gpus_per_worker 0), which is how the tests run it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dpsweep.bench.gpu import QUICKSTART

LEVELS = (1, 2, 4)
# The gpu-check's quickstart DP trial: the embedded MiniLM, LoRA on the top layer, 64 tokens, ε = 8
TRIAL = {key: value for key, value in QUICKSTART.items() if key != "dataset_format"}
EPSILON = 8.0


@dataclass(frozen=True)
class Level:
    """One concurrency level: k trials at once, each with 1/k of the GPU (or of the CPUs)."""

    trials_at_once: int
    cpus_per_trial: float
    gpu: bool

    def resources(self) -> dict:
        """The search space's `resources` section for this level."""
        return {"workers_per_trial": 1, "cpus_per_worker": self.cpus_per_trial,
                "gpus_per_worker": 1.0 / self.trials_at_once if self.gpu else 0.0,
                "max_concurrent_trials": self.trials_at_once}


def level_mapping(level: Level, *, data: Path, trials: int, store: str, trial: dict | None = None) -> dict:
    """The search space (as a parsed YAML mapping) of one level: `trials` identical trials."""
    return {"name": f"concurrency-{level.trials_at_once}",
            "dataset": {"format": "mimic-cxr", "path": str(data)},
            "privacy": {"epsilons": [EPSILON]},
            "search": {},
            "training": dict(trial or TRIAL),
            "trials_per_target": trials,
            "sampler": {"name": "random", "seed": 0},
            "resources": level.resources(),
            "store": store}


def default_cpus_per_trial(levels: tuple[int, ...]) -> float:
    """CPUs each trial gets at every level: the machine (less one for the driver) over the top level."""
    return float(max(1, ((os.cpu_count() or 2) - 1) // max(levels)))


def bench_concurrency(*, data: Path, levels: tuple[int, ...] = LEVELS, trials: int = 8, device: str = "cuda:0",
                      cpus_per_trial: float | None = None, trial: dict | None = None, log=None) -> dict:
    """Run the sweep of every level, one after another; their figures side by side.

    Uses the Ray already initialised in this process, else each level's sweep starts (and
    stops) a private local Ray that sees only `device`'s GPU.
    """
    if not levels or any(not isinstance(k, int) or k < 1 for k in levels):
        raise ValueError(f"levels must be whole numbers >= 1, got {list(levels)!r}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}; pass 8 for example")
    gpu = device.startswith("cuda")
    cpus = cpus_per_trial or default_cpus_per_trial(levels)
    report: dict = {"device": device, "trials_per_level": trials, "cpus_per_trial": cpus, "levels": []}
    with _one_gpu_for_ray(device if gpu else None):
        for k in levels:
            level = Level(trials_at_once=k, cpus_per_trial=cpus, gpu=gpu)
            report["levels"].append(run_level(level, data=data, trials=trials, trial=trial, log=log))
    base = report["levels"][0]["trials_per_hour"]
    for row in report["levels"]:
        row["speedup_over_first_level"] = row["trials_per_hour"] / base
    return report


def run_level(level: Level, *, data: Path, trials: int, trial: dict | None = None, log=None) -> dict:
    """One level's sweep into a throwaway store; its rates, trial times and peak GPU memory."""
    from dpsweep.results import ResultStore
    from dpsweep.sweep.runner import inspect_sweep, run_sweep, stored_rows
    from dpsweep.sweep.spec import spec_from_mapping

    k = level.trials_at_once
    with tempfile.TemporaryDirectory(prefix="dpsweep-concurrency-") as tmp:
        mapping = level_mapping(level, data=data, trials=trials, store=str(Path(tmp) / "store"), trial=trial)
        spec, plan = inspect_sweep(spec_from_mapping(mapping, source=f"bench concurrency (k={k})"))
        store = ResultStore(spec.store)
        outcome = run_sweep(spec, plan, sweep_id=f"concurrency-{k}", store=store, runs_dir=str(Path(tmp) / "runs"),
                            log=log)
        rows = stored_rows(store, dataset=plan.dataset, sweep_id=f"concurrency-{k}")
    return level_figures(level, outcome.progress.timings, rows=rows, sweep_seconds=outcome.seconds)


def level_figures(level: Level, timings, *, rows: list[dict], sweep_seconds: float) -> dict:
    """Trials per hour (trial phase and whole sweep), trial times and peaks, from the driver's timings."""
    phase = (max(t.finished_s for t in timings) - min(t.finished_s - t.driver_seconds for t in timings)
             if timings else float("nan"))
    peaks = [t.peak_gpu_mb for t in timings if t.peak_gpu_mb is not None]
    statuses = [r["status"] for r in rows]
    return {"trials_at_once": level.trials_at_once, **{k: v for k, v in level.resources().items()
                                                       if k in ("cpus_per_worker", "gpus_per_worker")},
            "trials": len(rows), "completed": statuses.count("completed"),
            "failed": statuses.count("failed"), "infeasible": statuses.count("infeasible"),
            "trial_phase_seconds": phase, "sweep_seconds": sweep_seconds,
            "trials_per_hour": len(timings) / phase * 3600 if timings else 0.0,
            "trials_per_hour_whole_sweep": len(timings) / sweep_seconds * 3600,
            "trial_seconds_median": statistics.median(t.driver_seconds for t in timings) if timings else None,
            "train_seconds_median": (statistics.median(t.parts.get("train_seconds", 0.0) for t in timings)
                                     if timings else None),
            "peak_gpu_mb_per_trial_max": max(peaks) if peaks else None,
            # trials hold their peaks at different moments: k x the largest bounds their sum
            "peak_gpu_mb_bound_all_at_once": max(peaks) * level.trials_at_once if peaks else None}


@contextlib.contextmanager
def _one_gpu_for_ray(device: str | None) -> Iterator[None]:
    """While a sweep starts its own local Ray: let it see only `device`'s GPU (so every
    fraction lands on that one), and start it locally even where RAY_ADDRESS names a cluster."""
    saved = {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")}
    os.environ.pop("RAY_ADDRESS", None)
    if device is not None:
        index = int(device.partition(":")[2] or 0)
        visible = [v for v in (saved["CUDA_VISIBLE_DEVICES"] or "").split(",") if v.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[index] if visible else str(index)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
