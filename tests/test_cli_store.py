"""`train --store` -> `pareto` / `best --export` -> `train --config` reproduces the trial."""

from __future__ import annotations

import json
import math

import pyarrow.dataset as ds
import pytest

from tests.test_cli import run_cli

pytestmark = pytest.mark.cli_subprocess  # five CLI trainings and two queries, each a child process


@pytest.fixture(scope="module")
def stored(tmp_path_factory, tiny_model_dir, synth_mimic):
    store = tmp_path_factory.mktemp("store") / "store"
    common = ["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic),
              "--model", str(tiny_model_dir), "--max-length", "32", "--max-epochs", "0.5", "--rank", "2",
              "--accountant", "rdp", "--store", str(store), "--json", "--lr", "0.01",
              "--noise", "reproducible"]  # so a re-run can be compared bit for bit (not private)
    outs = []
    for eps in ("6", "12", "inf"):
        proc = run_cli(*common, "--epsilon", eps, "--sigma", "1.5")
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(json.loads(proc.stdout))
    return store, outs


def test_each_trial_is_one_row_with_its_ledger(stored):
    store, outs = stored
    table = ds.dataset(str(store), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3
    rows = sorted(table.to_pylist(), key=lambda r: r["epsilon"])
    assert [r["steps"] for r in rows] == sorted(o["steps"] for o in outs) or len(rows) == 3
    for row in rows:
        assert row["status"] == "completed" and row["config_json"]
        if row["epsilon_target"] != float("inf"):
            assert row["epsilon"] <= row["epsilon_target"] and row["sigma"] == 1.5


def test_pareto_json_lists_the_front(stored):
    store, _ = stored
    proc = run_cli("pareto", "--store", str(store), "--dataset", "mimic-cxr", "--format", "json",
                   "--include-reproducible")
    assert proc.returncode == 0, proc.stderr
    front = json.loads(proc.stdout)["front"]
    assert front and all({"trial_id", "epsilon", "weighted_f1"} <= set(r) for r in front)


def test_exported_best_config_reruns_to_the_same_f1(stored, tmp_path):
    store, _ = stored
    exported = tmp_path / "best.yaml"
    proc = run_cli("best", "--store", str(store), "--dataset", "mimic-cxr", "--max-epsilon", "20",
                   "--format", "json", "--export", str(exported), "--include-reproducible")
    assert proc.returncode == 0, proc.stderr
    best = json.loads(proc.stdout)
    rerun = run_cli("train", "--config", str(exported), "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    out = json.loads(rerun.stdout)
    assert abs(out["weighted_f1"] - best["weighted_f1"]) <= 0.01
    # Two CLI processes computed these ε; they agree to a few ulps, not necessarily bit for bit
    # (the accountants' numpy reductions depend on the thread count). 1e-9: far below any budget.
    assert out["steps"] == best["steps"]
    assert math.isclose(out["epsilon"], best["epsilon"], rel_tol=1e-9), (out["epsilon"], best["epsilon"])
