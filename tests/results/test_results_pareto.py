"""The fast Pareto front equals a brute-force O(n^2) reference, whatever the row order."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsweep.results.pareto import pareto_front

EPSILONS = st.one_of(st.sampled_from([0.01, 0.1, 1.0, 1.0, 10.0, math.inf]),
                     st.floats(min_value=1e-3, max_value=100.0))
METRICS = st.one_of(st.sampled_from([0.2, 0.5, 0.5, 0.8, 0.9]), st.floats(min_value=0.0, max_value=1.0))
ROWS = st.lists(
    st.fixed_dictionaries({
        "dataset": st.sampled_from(["mimic-cxr", "mimic-cxr", "ct-rate"]),
        "status": st.sampled_from(["completed", "completed", "completed", "failed", "pruned"]),
        "epsilon": st.one_of(EPSILONS, st.none()),
        "weighted_f1": st.one_of(METRICS, METRICS, st.none()),
        "trial_id": st.sampled_from([f"t{i}" for i in range(8)]),
        "sweep_id": st.sampled_from(["s1", "s2"]),
    }),
    max_size=40,
)
KEY = ("epsilon", "weighted_f1", "trial_id", "sweep_id")


def _table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([("dataset", pa.string()), ("status", pa.string()), ("epsilon", pa.float64()),
                        ("weighted_f1", pa.float64()), ("trial_id", pa.string()), ("sweep_id", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def brute_force_front(rows: list[dict], dataset: str) -> list[tuple]:
    """O(n^2): keep points no other point dominates; one of each exact (ε, metric) duplicate."""
    points = [r for r in rows if r["dataset"] == dataset and r["status"] == "completed"
              and r["epsilon"] is not None and r["weighted_f1"] is not None]

    def dominates(a: dict, b: dict) -> bool:
        no_worse = a["epsilon"] <= b["epsilon"] and a["weighted_f1"] >= b["weighted_f1"]
        return no_worse and (a["epsilon"] < b["epsilon"] or a["weighted_f1"] > b["weighted_f1"])

    front = [p for p in points if not any(dominates(q, p) for q in points)]
    chosen: dict[tuple, tuple] = {}
    for p in front:  # duplicate rule: the smallest (trial_id, sweep_id) survives
        key = (p["epsilon"], p["weighted_f1"])
        candidate = (p["trial_id"], p["sweep_id"])
        chosen[key] = min(chosen.get(key, candidate), candidate)
    return sorted((eps, m, *ids) for (eps, m), ids in chosen.items())


def _as_tuples(front: pa.Table) -> list[tuple]:
    return [tuple(r[k] for k in KEY) for r in front.to_pylist()]


@settings(max_examples=200, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 2**32 - 1))
def test_front_matches_brute_force_and_ignores_order_and_duplicates(rows, seed) -> None:
    expected = brute_force_front(rows, "mimic-cxr")
    front = pareto_front(_table(rows), dataset="mimic-cxr")
    assert _as_tuples(front) == expected  # also checks sorted by ε ascending
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    assert pareto_front(_table(shuffled), dataset="mimic-cxr").to_pylist() == front.to_pylist()
    doubled = rows + random.Random(seed + 1).sample(rows, len(rows))
    assert pareto_front(_table(doubled), dataset="mimic-cxr").to_pylist() == front.to_pylist()


def test_front_is_strictly_increasing_and_non_private_only_when_it_beats_all() -> None:
    rows = [
        {"dataset": "d", "status": "completed", "epsilon": e, "weighted_f1": m, "trial_id": t, "sweep_id": "s"}
        for e, m, t in [(0.1, 0.5, "a"), (1.0, 0.7, "b"), (1.0, 0.6, "c"), (10.0, 0.7, "d"),
                        (math.inf, 0.65, "np1"), (0.5, 0.5, "e")]
    ]
    assert [r["trial_id"] for r in pareto_front(_table(rows), dataset="d").to_pylist()] == ["a", "b"]
    rows.append({**rows[-2], "weighted_f1": 0.9, "trial_id": "np2"})
    assert [r["trial_id"] for r in pareto_front(_table(rows), dataset="d").to_pylist()] == ["a", "b", "np2"]


def test_unknown_metric_and_empty_input() -> None:
    with pytest.raises(ValueError, match="metric must be one of"):
        pareto_front(_table([]), dataset="d", metric="accuracy")
    assert pareto_front(_table([]), dataset="d").num_rows == 0
