"""What an ε in the store covers, said wherever one is shown; which rows may be shown at all.

Every ε dpsweep prints is a claim about what is released. A per-trial ε excludes the
tuning that chose the trial, validation and test; rows whose noise can be replayed from
their stored seed are not private at all. These helpers keep the front, `best`, the
report and the sweep summary saying the same thing. Torch-free and instant: the
composed ε of many trials is a basic-composition sum here; `composed_epsilon` (PLD, a few
seconds, loads dp-accounting) gives the tight figure on request.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dpsweep.errors import UserInputError
from dpsweep.results.schema import METRIC_COLUMNS

SELECTION_METRICS: tuple[str, ...] = tuple(m for m in METRIC_COLUMNS if not m.startswith("test_"))
"""Metrics a query may choose trials by: validation only (the test split never selects)."""


def selection_metric(metric: str) -> str:
    """`metric` if it may select trials; a one-line error for test metrics and unknown names."""
    if metric.startswith("test_"):
        raise UserInputError(f"--metric {metric} is refused: the test split must never choose a trial "
                             f"(that spends it); use a validation metric: {', '.join(SELECTION_METRICS)}")
    if metric not in SELECTION_METRICS:
        raise UserInputError(f"--metric must be one of {', '.join(SELECTION_METRICS)}, got {metric!r}")
    return metric


def _replayable(table: pa.Table) -> pa.ChunkedArray:
    """True for DP rows whose noise can be replayed: noise 'reproducible', or not recorded
    (rows written before dpsweep recorded it drew their noise from the stored seed)."""
    private = pc.is_finite(table["epsilon_target"])
    if "noise" not in table.column_names:
        return private
    noise = table["noise"]
    return pc.and_(private, pc.or_(pc.is_null(noise), pc.equal(pc.fill_null(noise, ""), "reproducible")))


def shown_rows(table: pa.Table, *, include_reproducible: bool = False) -> pa.Table:
    """The rows a front, `best` or a report may show: replayable-noise DP rows only when asked."""
    if include_reproducible or table.num_rows == 0:
        return table
    replayable = pc.fill_null(_replayable(table), False)
    hidden = pc.sum(replayable).as_py() or 0
    if hidden:
        warnings.warn(f"left out {hidden} DP row(s) whose noise is replayable from their stored seed "
                      "(noise 'reproducible', or written before dpsweep recorded it): they are not private; "
                      "pass --include-reproducible to show them", UserWarning, stacklevel=2)
    return table.filter(pc.invert(replayable))


def touched(table: pa.Table, dataset: str) -> dict[str, Any]:
    """The DP trials of `dataset` that touched its training data, and what ε they add up to."""
    rows = table.filter(pc.and_(pc.equal(table["dataset"], dataset), pc.is_finite(table["epsilon_target"])))
    rows = rows.filter(pc.is_in(rows["status"], pa.array(["completed", "failed"])))
    known = rows.filter(pc.is_valid(rows["epsilon"]))
    failed_unknown = rows.num_rows - known.num_rows
    units = sorted({u for u in rows["privacy_unit"].to_pylist() if u}) if "privacy_unit" in rows.column_names else []
    return {"trials": rows.num_rows, "epsilon_sum": float(pc.sum(known["epsilon"]).as_py() or 0.0),
            "delta_sum": float(pc.sum(known["delta"]).as_py() or 0.0), "unknown": failed_unknown,
            "units": units or ["record"]}


def coverage_lines(table: pa.Table, dataset: str, *, composed: float | None = None) -> list[str]:
    """Lines saying what the ε shown for `dataset` covers and what it leaves out."""
    t = touched(table, dataset)
    unit = " and ".join("one patient (all their reports)" if u == "patient" else "one report" for u in t["units"])
    lines = [f"ε is per trial: the larger of the Opacus accountant's and dp-accounting's PLD value, "
             f"for the steps taken; it protects {unit} of the training split."]
    if t["trials"]:
        tight = (f"; composed (PLD): ε = {composed:.4g}" if composed is not None
                 else "; --composed computes the tight composed ε (PLD)")
        unknown = f" ({t['unknown']} failed trial(s) with unknown steps not in the sum)" if t["unknown"] else ""
        lines.append(f"It excludes hyperparameter tuning: {t['trials']} DP trial(s) touched this data set's "
                     f"training data; all of them together spend ε <= {t['epsilon_sum']:.4g} at "
                     f"δ <= {t['delta_sum']:.2g} by basic composition{tight}{unknown}.")
    if "epsilon_release" in table.column_names and pc.any(pc.is_valid(table["epsilon_release"])).as_py():
        lines.append("Rows with released = 1 come from random-stopping sweeps: their epsilon_release is the "
                     "ε of releasing that model, tuning included (Papernot & Steinke 2022).")
    lines.append("Validation and test reports are outside ε: they choose trials and per-label thresholds.")
    return lines


def composed_epsilon_of(table: pa.Table, dataset: str) -> float | None:
    """The tight ε (PLD) of every DP trial of `dataset` that touched the data, or None if none.

    Loads dp-accounting: seconds, not milliseconds. Failed trials with unknown steps are left out.
    """
    rows = table.filter(pc.and_(pc.equal(table["dataset"], dataset), pc.is_finite(table["epsilon_target"])))
    rows = rows.filter(pc.and_(pc.is_valid(rows["steps"]), pc.greater(pc.fill_null(rows["steps"], 0), 0)))
    if rows.num_rows == 0:
        return None
    from dpsweep.privacy.tuning import TrialPrivacy, composed_epsilon

    trials = [TrialPrivacy(sigma=r["sigma"], sample_rate=r["sample_rate"], steps=int(r["steps"]))
              for r in rows.select(["sigma", "sample_rate", "steps"]).to_pylist()]
    delta = max(d for d in rows["delta"].to_pylist() if d is not None and math.isfinite(d))
    return composed_epsilon(trials=trials, delta=delta)
