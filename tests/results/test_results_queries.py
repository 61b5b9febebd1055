"""Queries: best under a budget, privacy cost, per-dataset comparison and config export."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from dpsweep.results.queries import (
    best_under_budget,
    compare_datasets,
    export_config,
    privacy_cost,
)


@pytest.fixture
def table(store, make_row):
    rows = [
        make_row(trial_id="a", epsilon_target=0.1, epsilon=0.09, weighted_f1=0.55),
        make_row(trial_id="b", epsilon_target=1.0, epsilon=0.95, weighted_f1=0.70),
        make_row(trial_id="c", epsilon_target=1.0, epsilon=0.80, weighted_f1=0.70),  # ties b, lower ε
        make_row(trial_id="d", epsilon_target=10.0, epsilon=9.5, weighted_f1=0.60),  # dominated
        make_row(trial_id="np", private=False, weighted_f1=0.85),
        make_row(trial_id="f", status="failed", epsilon=None, weighted_f1=None, macro_f1=None),
        make_row(trial_id="x", dataset="ct-rate", epsilon_target=1.0, epsilon=1.0, weighted_f1=0.4),
    ]
    for row in rows:
        store.append(row)
    return store.read()


def test_best_under_budget(table) -> None:
    assert best_under_budget(table, dataset="mimic-cxr", max_epsilon=0.05) is None
    assert best_under_budget(table, dataset="mimic-cxr", max_epsilon=0.5)["trial_id"] == "a"
    assert best_under_budget(table, dataset="mimic-cxr", max_epsilon=1.0)["trial_id"] == "c"
    assert best_under_budget(table, dataset="mimic-cxr", max_epsilon=100)["trial_id"] == "c"
    best = best_under_budget(table, dataset="mimic-cxr", max_epsilon=math.inf)
    assert best["trial_id"] == "np" and best["epsilon"] == math.inf
    assert best_under_budget(table, dataset="nope", max_epsilon=1.0) is None
    # every macro_f1 is 0.6: the tie goes to the lowest ε
    assert best_under_budget(table, dataset="mimic-cxr", max_epsilon=1.0, metric="macro_f1")["trial_id"] == "a"
    with pytest.raises(ValueError, match="max_epsilon"):
        best_under_budget(table, dataset="mimic-cxr", max_epsilon=-1)


def test_privacy_cost(table) -> None:
    cost = privacy_cost(table, dataset="mimic-cxr")
    assert [c["trial_id"] for c in cost] == ["a", "c", "np"]
    assert cost[0]["baseline"] == 0.85 and cost[0]["cost"] == pytest.approx(0.30)
    assert cost[1]["cost"] == pytest.approx(0.15) and cost[2]["cost"] == 0.0
    no_baseline = privacy_cost(table, dataset="ct-rate")
    assert no_baseline == [{"epsilon": 1.0, "weighted_f1": 0.4, "trial_id": "x", "sweep_id": "sweep-a",
                            "baseline": None, "cost": None}]


def test_compare_datasets(table) -> None:
    summary = {s["dataset"]: s for s in compare_datasets(table, metric="weighted_f1")}
    mimic = summary["mimic-cxr"]
    assert mimic["n_trials"] == 6 and mimic["n_completed"] == 5
    assert mimic["best_non_private"] == {"weighted_f1": 0.85, "epsilon": math.inf, "trial_id": "np"}
    assert [(b["epsilon_target"], b["trial_id"]) for b in mimic["best_dp_by_target"]] == [
        (0.1, "a"), (1.0, "c"), (10.0, "d")]
    assert summary["ct-rate"]["best_non_private"] is None


def test_export_config_round_trips_through_yaml(table, tmp_path) -> None:
    for trial in ("c", "np"):
        row = next(r for r in table.to_pylist() if r["trial_id"] == trial)
        path = export_config(row, tmp_path / "out" / f"{trial}.yaml")
        assert yaml.safe_load(path.read_text()) == json.loads(row["config_json"])
    np_config = yaml.safe_load((tmp_path / "out" / "np.yaml").read_text())
    assert np_config["privacy"]["epsilon"] == math.inf  # written as YAML .inf
    with pytest.raises(ValueError, match="config_json"):
        export_config({"trial_id": "z", "config_json": None}, tmp_path / "z.yaml")
