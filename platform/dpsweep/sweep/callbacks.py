"""Driver-side Tune callbacks: one results-store row per trial, and progress lines.

Rows are written from the driver (never from trials), so a remote trial needs no access
to the store. A row already in the store (same sweep_id and trial_id, e.g. after
`--resume`) is left as it is: writes are idempotent and never overwrite.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from dpsweep.settings import TrialConfig
from dpsweep.sweep.trainable import METRIC, TIMING_KEYS, config_for, row_from_json


def log(message: str) -> None:
    print(f"[dpsweep] {message}", file=sys.stderr, flush=True)


@dataclass
class TrialTiming:
    trial_id: str
    epsilon_target: float
    driver_seconds: float    # trial start -> completion, seen from the driver
    trial_seconds: float     # inside the trial function
    parts: dict[str, float] = field(default_factory=dict)  # load/cache/train/eval/worker start seconds


@dataclass
class SweepProgress:
    """Counts and timings across all targets of one sweep (lives in the driver)."""

    total: int
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    best: dict[float, float] = field(default_factory=dict)
    timings: list[TrialTiming] = field(default_factory=list)
    failed: int = 0
    infeasible: int = 0

    def finished(self, epsilon: float, score: float | None, status: str) -> None:
        self.done += 1
        if status == "failed":
            self.failed += 1
        elif status == "infeasible":
            self.infeasible += 1
        elif score is not None:
            self.best[epsilon] = max(score, self.best.get(epsilon, -1.0))
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * max(self.total - self.done, 0)
        best = ", ".join(f"{_eps(e)}: {f:.3f}" for e, f in sorted(self.best.items()))
        log(f"{self.done}/{self.total} trials done ({self.failed} failed, {self.infeasible} infeasible); "
            f"best {METRIC} per ε target: {best or '-'}; {elapsed:.0f} s elapsed, ETA {eta:.0f} s")


def _eps(e: float) -> str:
    return "inf" if math.isinf(e) else f"{e:g}"


class StoreCallback(Callback):
    """Writes each finished, infeasible or failed trial of one ε target to the store."""

    def __init__(self, *, store, sweep_id: str, trial_prefix: str, epsilon: float, base: dict[str, Any],
                 dataset: str, progress: SweepProgress, row_extra: dict[str, Any] | None = None) -> None:
        self.store, self.sweep_id, self.prefix = store, sweep_id, trial_prefix
        self.epsilon, self.base, self.dataset, self.progress = epsilon, base, dataset, progress
        self.row_extra = row_extra or {}
        self._started: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._started[trial.trial_id] = time.perf_counter()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        result = trial.last_result or {}
        if "row_json" not in result:  # finished without reporting: count it as failed
            self._write_failed(trial, "trial ended without reporting a result")
            return
        self.write_row(row_from_json(result["row_json"]))
        started = self._started.pop(trial.trial_id, None)
        if started is not None:
            self.progress.timings.append(TrialTiming(
                trial_id=trial.trial_id, epsilon_target=self.epsilon,
                driver_seconds=time.perf_counter() - started, trial_seconds=float(result.get("trial_seconds", 0)),
                parts={k: float(v) for k, v in result.items() if k in TIMING_KEYS and v is not None}))
        self.progress.finished(self.epsilon, result.get(METRIC), result.get("status", "completed"))

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._write_failed(trial, short_error(trial))

    def _write_failed(self, trial, error: str) -> None:
        self.write_row({**failed_row(trial.config, base=self.base, sweep_id=self.sweep_id,
                                     trial_id=f"{self.prefix}-{trial.trial_id}", dataset=self.dataset,
                                     error=error), **self.row_extra})
        self.progress.finished(self.epsilon, None, "failed")

    def write_row(self, row: dict[str, Any]) -> bool:
        """Append a row; False when the trial is already stored (resume), never overwriting."""
        try:
            self.store.append(row)
        except FileExistsError:
            return False
        return True


def short_error(trial) -> str:
    """Type and last line of a trial's exception, bounded; report text is never in our errors."""
    exc = _trial_exception(trial)
    if exc is None:
        return "trial failed; see the Ray logs of the trial"
    cause = getattr(exc, "cause", None) or exc
    first = (str(cause).strip().splitlines() or [""])[-1]
    return f"{type(cause).__name__}: {first}"[:300]


def _trial_exception(trial):
    """The exception Tune pickled next to the trial (written locally before callbacks run)."""
    import cloudpickle

    try:
        path = trial.pickled_error_file
        if path and Path(path).is_file():
            with open(path, "rb") as f:
                return cloudpickle.load(f)
        return trial.get_pickled_error()
    except Exception:  # noqa: BLE001 - an unreadable error file must not stop the sweep
        return None


def failed_row(params: dict[str, Any], *, base: dict[str, Any], sweep_id: str, trial_id: str, dataset: str,
               error: str) -> dict[str, Any]:
    """The store row of a trial that raised: its config and the error, no metrics, no ε spent."""
    from dpsweep.train.record import TrialResult, result_row

    try:
        config = config_for(params, base)
    except ValueError:
        config = TrialConfig.from_mapping(base, source="sweep base")
    return result_row(TrialResult.failed(config, dataset=dataset, error=error), sweep_id=sweep_id,
                      trial_id=trial_id)
