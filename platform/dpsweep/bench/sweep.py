"""Where a sweep trial's time goes: training steps against everything else.

Runs a search space on a local Ray into a throwaway store and splits each trial's wall
time, as the driver sees it (trial start to result), into:

- framework: outside the trial function (Ray actor start and scheduling, Tune, Optuna);
- loading: reading and splitting the corpus, tokenising, loading the model;
- worker start: starting the Ray Train worker group (trials with more than one worker);
- frozen-layer cache: the frozen lower layers computed once (compute the steps would
  otherwise repeat every step);
- training steps, and evaluation on the validation (and test) split;
- other: inside the trial but none of the above (Ray Train's controller and checkpoint
  reports, for trials on workers).

The overhead share the issue tracks is framework + loading + worker start + other over
the driver-side wall time.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

COMPONENTS = ("framework_seconds", "load_seconds", "worker_start_seconds", "cache_seconds", "train_seconds",
              "eval_seconds", "other_seconds")


def bench_sweep(space: str, *, workers: int = 1, trials_per_target: int | None = None,
                epsilons: tuple[float, ...] | None = None) -> dict:
    from dpsweep.results import ResultStore
    from dpsweep.sweep.runner import inspect_sweep, run_sweep
    from dpsweep.sweep.spec import load_spec

    spec = load_spec(space)
    changes = {}
    if workers > 1:
        # the trial itself holds 0.1 CPU: workers get the rest of the machine
        cpus = max(0.1, ((os.cpu_count() or 2) - 0.1) / workers)
        changes["resources"] = replace(spec.resources, workers_per_trial=workers, max_concurrent_trials=1,
                                       cpus_per_worker=round(cpus - 0.05, 2))
    if trials_per_target:
        changes["trials_per_target"] = trials_per_target
    if epsilons:
        changes["epsilons"] = tuple(sorted(epsilons))
    with tempfile.TemporaryDirectory(prefix="dpsweep-bench-") as tmp:
        spec = replace(spec, store=str(Path(tmp) / "store"), **changes)
        spec, plan = inspect_sweep(spec)
        outcome = run_sweep(spec, plan, sweep_id="bench", store=ResultStore(spec.store),
                            runs_dir=str(Path(tmp) / "runs"))
    report = summarize(outcome.progress.timings, space=space, workers=workers, wall_seconds=outcome.seconds)
    # Sweep level: of all trial slots' time (wall x concurrent trials), how much went to steps;
    # includes starting Ray, the shared frozen-layer cache, actor starts and idle slots.
    slots = outcome.seconds * spec.resources.max_concurrent_trials
    report["sweep_slot_seconds"] = slots
    report["sweep_share_train"] = sum(t["train_seconds"] for t in report["per_trial"]) / slots
    return report


def summarize(timings, *, space: str, workers: int, wall_seconds: float) -> dict:
    trials = []
    for t in timings:
        parts = {k: float(t.parts.get(k, 0.0)) for k in COMPONENTS if k not in ("framework_seconds", "other_seconds")}
        parts["framework_seconds"] = max(t.driver_seconds - t.trial_seconds, 0.0)
        # inside the trial but in none of the parts: Ray Train's controller, checkpoint reports
        parts["other_seconds"] = max(t.trial_seconds - sum(parts[k] for k in COMPONENTS if k in parts
                                                           and k != "framework_seconds"), 0.0)
        trials.append({"trial_id": t.trial_id, "epsilon_target": t.epsilon_target,
                       "driver_seconds": t.driver_seconds, **parts})
    total = sum(t["driver_seconds"] for t in trials) or float("nan")
    sums = {k: sum(t[k] for t in trials) for k in COMPONENTS}
    overhead = (sums["framework_seconds"] + sums["load_seconds"] + sums["worker_start_seconds"]
                + sums["other_seconds"])
    return {"space": space, "workers_per_trial": workers, "trials": len(trials), "sweep_wall_seconds": wall_seconds,
            "trial_wall_seconds": total, **{f"share_{k.removesuffix('_seconds')}": v / total for k, v in sums.items()},
            "overhead_share": overhead / total,
            "worker_start_seconds_mean": sums["worker_start_seconds"] / max(len(trials), 1),
            "per_trial": trials}
