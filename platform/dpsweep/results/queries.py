"""Questions users ask of the results table: best under a budget, cost of privacy, re-run.

Every function takes a table read from the store (see
:meth:`~dpsweep.results.store.ResultStore.read`) and counts only completed trials with
the metric present. Ties break the same way everywhere: higher metric, then lower ε,
then smaller trial_id and sweep_id, so answers do not depend on row order.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dpsweep.errors import UserInputError
from dpsweep.results.pareto import completed_rows, pareto_front


def _best_index(rows: pa.Table, metric: str) -> int | None:
    if rows.num_rows == 0:
        return None
    trial = np.asarray(rows["trial_id"].to_numpy(zero_copy_only=False), dtype=str)
    sweep = np.asarray(rows["sweep_id"].to_numpy(zero_copy_only=False), dtype=str)
    order = np.lexsort((sweep, trial, rows["epsilon"].to_numpy(), -rows[metric].to_numpy()))
    return int(order[0])


def _best_row(rows: pa.Table, metric: str) -> dict[str, Any] | None:
    index = _best_index(rows, metric)
    return None if index is None else rows.slice(index, 1).to_pylist()[0]


def best_under_budget(table: pa.Table, *, dataset: str, max_epsilon: float,
                      metric: str = "weighted_f1") -> dict[str, Any] | None:
    """The best completed trial of ``dataset`` with ε <= ``max_epsilon``, or None.

    ``max_epsilon=math.inf`` includes non-private trials.
    """
    max_epsilon = float(max_epsilon)
    if math.isnan(max_epsilon) or max_epsilon <= 0:
        raise UserInputError(f"max_epsilon must be > 0 (inf for no limit), but got {max_epsilon}")
    rows = completed_rows(table, dataset=dataset, metric=metric)
    return _best_row(rows.filter(pc.less_equal(rows["epsilon"], max_epsilon)), metric)


def best_non_private(table: pa.Table, *, dataset: str, metric: str = "weighted_f1") -> dict[str, Any] | None:
    """The best completed non-private (ε = +inf) trial of ``dataset``, or None."""
    rows = completed_rows(table, dataset=dataset, metric=metric)
    return _best_row(rows.filter(pc.equal(rows["epsilon"], math.inf)), metric)


def compare_datasets(table: pa.Table, *, metric: str = "weighted_f1") -> list[dict[str, Any]]:
    """Per dataset: trial counts, the best non-private trial and the best DP trial per ε target.

    Returns one dict per dataset (sorted by name) with keys dataset, n_trials,
    n_completed, best_non_private ({metric, epsilon, trial_id} or None) and
    best_dp_by_target (a list of {epsilon_target, metric, epsilon, trial_id}, by target).
    """
    summary = []
    for dataset in sorted(pc.unique(table["dataset"]).to_pylist()):
        rows = completed_rows(table, dataset=dataset, metric=metric)
        n_trials = pc.sum(pc.equal(table["dataset"], dataset)).as_py()
        baseline = best_non_private(table, dataset=dataset, metric=metric)
        by_target = []
        targets = sorted(t for t in pc.unique(rows["epsilon_target"]).to_pylist() if math.isfinite(t))
        for target in targets:
            best = _best_row(rows.filter(pc.equal(rows["epsilon_target"], target)), metric)
            if best is None:  # cannot happen: the target came from these rows
                continue
            by_target.append({"epsilon_target": target, **_brief(best, metric)})
        summary.append({
            "dataset": dataset,
            "n_trials": n_trials,
            "n_completed": rows.num_rows,
            "best_non_private": None if baseline is None else _brief(baseline, metric),
            "best_dp_by_target": by_target,
        })
    return summary


def _brief(row: dict[str, Any], metric: str) -> dict[str, Any]:
    return {metric: row[metric], "epsilon": row["epsilon"], "trial_id": row["trial_id"]}


def privacy_cost(table: pa.Table, *, dataset: str, metric: str = "weighted_f1") -> list[dict[str, Any]]:
    """For each Pareto-front trial: the metric lost against the best non-private trial.

    Returns one dict per front point (ε ascending) with epsilon, the metric, trial_id,
    sweep_id, ``baseline`` (best non-private metric, None without one) and ``cost``
    (baseline - metric; None without a baseline; negative if DP did better).
    """
    baseline_row = best_non_private(table, dataset=dataset, metric=metric)
    baseline = None if baseline_row is None else baseline_row[metric]
    out = []
    for row in pareto_front(table, dataset=dataset, metric=metric).to_pylist():
        value = row[metric]
        out.append({
            "epsilon": row["epsilon"],
            metric: value,
            "trial_id": row["trial_id"],
            "sweep_id": row["sweep_id"],
            "baseline": baseline,
            "cost": None if baseline is None else baseline - value,
        })
    return out


def export_config(row: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the trial's resolved config (``row["config_json"]``) as YAML; return the path.

    The file holds the config dict itself, top-level keys as stored, so it is a valid
    ``dpsweep train --config`` input that re-runs the trial.
    """
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is a core dependency
        raise ImportError("export_config needs PyYAML: pip install pyyaml") from exc
    raw = row.get("config_json")
    if not raw:
        raise UserInputError(f"row of trial {row.get('trial_id')!r} has no config_json to export")
    config = json.loads(raw)
    if not isinstance(config, dict):
        raise UserInputError(f"config_json of trial {row.get('trial_id')!r} is not a JSON object")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out
