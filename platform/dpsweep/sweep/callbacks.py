"""Driver-side Tune callbacks: one results-store row per trial, and progress lines.

Rows are written from the driver (never from trials), so a remote trial needs no access
to the store. A row already in the store (same sweep_id and trial_id, e.g. after
`--resume`) is left as it is: writes are idempotent and never overwrite.
"""

from __future__ import annotations

import math
import re
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
    peak_gpu_mb: float | None = None  # one-worker GPU trials: the trial process' peak allocated memory
    finished_s: float = field(default_factory=time.perf_counter)  # driver's clock (perf_counter) at completion


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
    recovered: list[str] = field(default_factory=list)  # rows the store refused, saved as JSON files
    interrupted: bool = False  # SIGINT asked the sweep to stop (see runner._stop_on_sigint)

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
                 dataset: str, progress: SweepProgress, row_extra: dict[str, Any] | None = None,
                 recovery_dir: Path | None = None) -> None:
        from dpsweep.results.recovery import recovery_folder

        self.store, self.sweep_id, self.prefix = store, sweep_id, trial_prefix
        self.epsilon, self.base, self.dataset, self.progress = epsilon, base, dataset, progress
        self.row_extra = row_extra or {}
        self.recovery_dir = recovery_dir or recovery_folder()
        self._started: dict[str, float] = {}
        self._recovered: set[str] = set()

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        """Stop Tune between steps once SIGINT asked the sweep to stop (Tune then stops its trials)."""
        if self.progress.interrupted:
            from dpsweep.sweep.runner import SweepInterrupted

            raise SweepInterrupted("the sweep was interrupted (SIGINT)")

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
                parts={k: float(v) for k, v in result.items() if k in TIMING_KEYS and v is not None},
                peak_gpu_mb=result.get("peak_gpu_mb")))
        self.progress.finished(self.epsilon, result.get(METRIC), result.get("status", "completed"))

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._write_failed(trial, short_error(trial))

    def _write_failed(self, trial, error: str) -> None:
        self.write_row({**failed_row(trial.config, base=self.base, sweep_id=self.sweep_id,
                                     trial_id=f"{self.prefix}-{trial.trial_id}", dataset=self.dataset,
                                     error=error), **self.row_extra})
        self.progress.finished(self.epsilon, None, "failed")

    def write_row(self, row: dict[str, Any]) -> bool:
        """Append a row; False when the trial is already stored (resume), never overwriting.

        A row the store cannot take (full disk, permissions) is saved as JSON in the recovery
        folder, once per trial, and the sweep goes on (False).
        """
        from dpsweep.results.recovery import Recovered, append_or_recover

        key = str(row.get("trial_id"))
        try:
            stored = append_or_recover(self.store, row, folder=self.recovery_dir)
        except FileExistsError:
            return False
        if isinstance(stored, Recovered):
            if key not in self._recovered:
                self._recovered.add(key)
                self.progress.recovered.append(str(stored.file))
                log(f"error: {stored.message(model_uri=row.get('model_uri'))}")
            else:  # a second attempt (reconcile) failed too: the first file holds the row
                stored.file.unlink(missing_ok=True)
            return False
        return True


def short_error(trial) -> str:
    """Type and last line of a trial's exception, bounded; report text is never in our errors.

    Read from Tune's text error file (``error.txt``), never from its pickled twin: unpickling
    a file in the runs dir (possibly a shared bucket) would run whatever code it holds.
    """
    text = _error_text(trial)
    if not text:
        return "trial failed; see the Ray logs of the trial"
    return error_summary(text)


def error_summary(text: str) -> str:
    """'Type: last line of the message' of the last exception in a traceback text, bounded."""
    lines = text.rstrip().splitlines()
    start = _last_exception_line(lines)
    if start is None:  # no traceback (e.g. a worker died): the last failure's first line
        body = [ln for ln in lines[_last_failure_header(lines) + 1:] if ln.strip()]
        return f"trial failed: {body[0].strip() if body else 'see the Ray logs of the trial'}"[:300]
    match = _EXCEPTION_LINE.fullmatch(lines[start])
    message = [match.group(2), *lines[start + 1:]]
    last = next((ln.strip() for ln in reversed(message) if ln.strip()), "")
    return f"{match.group(1)}: {last}"[:300]


# "package.module.TypeName: message", at the start of a line right after a traceback frame
_EXCEPTION_LINE = re.compile(r"(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*): ?(.*)")
_ERROR_TAIL_BYTES = 64 * 1024


def _last_exception_line(lines: list[str]) -> int | None:
    """Index of the last 'Type: message' line that closes a traceback, or None."""
    found, in_frames = None, False
    for i, line in enumerate(lines):
        if line.startswith("  File "):
            in_frames = True
        elif in_frames and not line.startswith((" ", "\t")):
            in_frames = False
            if _EXCEPTION_LINE.fullmatch(line):
                found = i
    return found


def _last_failure_header(lines: list[str]) -> int:
    headers = [i for i, ln in enumerate(lines) if ln.startswith("Failure # ")]
    return headers[-1] if headers else -1


def _error_text(trial) -> str | None:
    """The end of Tune's error.txt of the trial (written before callbacks run), or None."""
    try:
        path = trial.error_file
        if path and Path(path).is_file():
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - _ERROR_TAIL_BYTES))
                return f.read().decode("utf-8", errors="replace")
        text = trial.get_error()  # remote storage: the same text file, read through pyarrow
        return text[-_ERROR_TAIL_BYTES:] if isinstance(text, str) else None
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
