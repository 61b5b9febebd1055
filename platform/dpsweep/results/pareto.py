"""The Pareto front of a metric against ε: the trials no other trial beats on both.

A completed trial is dominated when another has ε <= its ε and metric >= its metric,
with at least one strict. The front is what a user picks from: for any budget, the best
metric reachable at that ε or less.

Rules, chosen so the answer does not depend on row order:

* Only ``status == "completed"`` rows with a non-null ε and metric count.
* Exact duplicates (same ε and same metric) keep one row: the smallest ``trial_id``,
  then the smallest ``sweep_id``.
* Non-private trials (ε = +inf) are on the front only when their metric beats every
  finite-ε trial; the report draws the best non-private trial as a baseline line anyway.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dpsweep.errors import UserInputError
from dpsweep.results.schema import METRIC_COLUMNS


def check_metric(metric: str) -> str:
    """Return ``metric`` if it is a rankable metric column, else raise naming the choices."""
    if metric not in METRIC_COLUMNS:
        raise UserInputError(f"metric must be one of {list(METRIC_COLUMNS)}, but got {metric!r}")
    return metric


def completed_rows(table: pa.Table, *, dataset: str, metric: str) -> pa.Table:
    """Rows of ``dataset`` that completed and have both ε and ``metric``."""
    check_metric(metric)
    mask = pc.and_(pc.equal(table["dataset"], dataset), pc.equal(table["status"], "completed"))
    mask = pc.and_(mask, pc.and_(pc.is_valid(table["epsilon"]), pc.is_valid(table[metric])))
    mask = pc.and_(mask, pc.invert(pc.is_nan(table[metric])))
    return table.filter(pc.fill_null(mask, False))


def front_indices(epsilon: np.ndarray, metric: np.ndarray, *tie_keys: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (minimise ``epsilon``, maximise ``metric``).

    Sorted by ε ascending. ``tie_keys`` (most significant first) choose which one of
    exact duplicates survives: the smallest. O(n log n): sort by ε ascending then metric
    descending; a point is on the front iff its metric beats every point before it.
    """
    if epsilon.size == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort(tuple(reversed(tie_keys)) + (-metric, epsilon))
    sorted_metric = metric[order]
    best_before = np.maximum.accumulate(sorted_metric)
    best_before = np.concatenate(([-np.inf], best_before[:-1]))
    return order[sorted_metric > best_before]


def pareto_front(table: pa.Table, *, dataset: str, metric: str = "weighted_f1") -> pa.Table:
    """Return the non-dominated completed trials of ``dataset``, sorted by ε ascending.

    ``table`` needs at least the columns dataset, status, epsilon, ``metric``, trial_id
    and sweep_id (a table read from :class:`~dpsweep.results.store.ResultStore` has them).
    """
    rows = completed_rows(table, dataset=dataset, metric=metric)
    index = front_indices(
        rows["epsilon"].to_numpy(),
        rows[metric].to_numpy(),
        _as_str_array(rows["trial_id"]),
        _as_str_array(rows["sweep_id"]),
    )
    return rows.take(pa.array(index, pa.int64()))


def _as_str_array(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=str)
