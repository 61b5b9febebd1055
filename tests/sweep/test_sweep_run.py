"""Real sweeps on a real (local) Ray: rows in the store, the front, --resume after a kill."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from dpsweep.cli import main
from dpsweep.privacy import compute_epsilon
from dpsweep.results import ResultStore
from dpsweep.sweep.commands import front_rows

# ε computed in two processes agrees to a few ulps, not bit for bit (see _check_rows);
# 1e-9 is far below any budget's meaning and far above float noise.
EPS_REL_TOL = 1e-9


def _rows(store: Path, sweep_id: str) -> list[dict]:
    store = ResultStore(store)
    if "tiny-mimic" not in store.datasets():
        return []
    table = store.read("tiny-mimic")
    return table.filter(pc.equal(table["sweep_id"], sweep_id)).to_pylist()


def _check_rows(rows: list[dict]) -> None:
    assert len({r["trial_id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["status"] in ("completed", "infeasible"), r["error"]
        if r["status"] != "completed":
            continue
        if math.isinf(r["epsilon_target"]):
            assert math.isinf(r["epsilon"]) and r["sigma"] == 0
            continue
        assert 0 < r["epsilon"] <= r["epsilon_target"]
        # A Ray worker (OMP_NUM_THREADS=1) computed the stored ε; this process may run with more
        # threads, and PRV's numpy reductions then differ in the last bits (seen: ...7025 vs ...699).
        recomputed = compute_epsilon(sigma=r["sigma"], sample_rate=r["sample_rate"], steps=r["steps"],
                                     delta=r["delta"], accountant=r["accountant"])
        assert math.isclose(r["epsilon"], recomputed, rel_tol=EPS_REL_TOL), (r["epsilon"], recomputed)


@pytest.mark.ray
def test_sweep_writes_one_row_per_trial_and_prints_front(write_space, tmp_path, capsys):
    space = write_space()
    code = main(["sweep", str(space), "--name", "e2e", "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    rows = _rows(tmp_path / "store", "e2e")
    assert sorted(r["epsilon_target"] for r in rows) == [3, 3, 8, 8, math.inf, math.inf]
    _check_rows(rows)
    assert sum(r["status"] == "completed" for r in rows) >= 4
    out = capsys.readouterr().out
    assert "Pareto front, tiny-mimic" in out
    front = front_rows(ResultStore(tmp_path / "store"), dataset="tiny-mimic", sweep_id="e2e")
    assert front and all(f"{r['weighted_f1']:>12.4f}" in out for r in front)
    assert "Configuration for experiment" not in out  # Tune's own tables stay quiet
    # the split's references, computed once on the corpus the sweep read, printed under the front
    assert "references of tiny-mimic computed" in out
    assert "references (weighted_f1): TF-IDF + logistic regression (non-private) 0." in out
    assert "floors: every label positive 0." in out
    # the same front from the query command
    assert main(["pareto", "--store", str(tmp_path / "store"), "--dataset", "tiny-mimic"]) == 0
    import ray

    assert not ray.is_initialized()  # the local Ray the sweep started is stopped again


def test_dry_run_starts_no_ray(write_space, capsys):
    import ray

    assert main(["sweep", str(write_space()), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ε=3: 2 trials over rank, lr, clip, sigma" in out and "total: 6 trials" in out
    assert "read once, in the driver, in " in out  # the sweep's only read of the data folder
    assert not ray.is_initialized()


def test_existing_sweep_name_needs_resume(write_space, tmp_path, capsys):
    from datetime import datetime, timezone

    store = ResultStore(tmp_path / "store")
    store.append({"sweep_id": "taken", "trial_id": "t1", "dataset": "tiny-mimic", "dataset_format": "mimic-cxr",
                  "model": "m", "status": "failed", "epsilon_target": 8.0, "started_at": datetime.now(timezone.utc),
                  "config_json": "{}"})
    assert main(["sweep", str(write_space()), "--name", "taken"]) == 2
    assert "pass --resume" in capsys.readouterr().err


@pytest.mark.ray
# CI runs the same resume in tests/reliability/test_faults.py (test_sigkilled_driver_...)
@pytest.mark.slow(reason="a SIGKILLed driver and a resume, about 100 s; `make test-slow`")
def test_resume_after_driver_killed(write_space, tmp_path):
    """Kill the driver (SIGKILL) once trials have landed; --resume completes the sweep exactly."""
    space = write_space()
    runs = str(tmp_path / "runs")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dpsweep.cli", "sweep", str(space), "--name", "killed",
                             "--runs-dir", runs], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(_rows(tmp_path / "store", "killed")) < 2:
            assert proc.poll() is None, "sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no rows after 240 s"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {r["trial_id"]: r for r in _rows(tmp_path / "store", "killed")}
    assert 2 <= len(before) < 6
    time.sleep(2)  # let the killed driver's Ray processes go (they share its fate)
    assert main(["sweep", str(space), "--resume", "--name", "killed", "--runs-dir", runs]) == 0
    after = _rows(tmp_path / "store", "killed")
    assert sorted(r["epsilon_target"] for r in after) == [3, 3, 8, 8, math.inf, math.inf]
    _check_rows(after)
    kept = {r["trial_id"]: r for r in after if r["trial_id"] in before}
    assert kept == before  # rows written before the kill are untouched


@pytest.mark.ray
def test_failed_trials_become_failed_rows(write_space, tmp_path, tiny_model_dir):
    """Model weights that vanish after the checks (e.g. a node without the mount): every trial
    fails, each one is a 'failed' row with a short error, and nothing else is lost. (Trials no
    longer read the data: the driver hands them its tokenised corpus; they still load the weights.)"""
    import shutil
    from dataclasses import replace

    from dpsweep.sweep.runner import inspect_sweep, run_sweep
    from dpsweep.sweep.spec import load_spec

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    space = write_space(trials_per_target=1)
    spec = load_spec(space)
    # no lora_layers: the driver computes no shared cache, so only the trials load the weights
    spec, plan = inspect_sweep(replace(spec, base=replace(spec.base, model=str(model), lora_layers=None)))
    for weights in model.glob("*.safetensors"):
        weights.unlink()  # the tokenizer stays: the driver tokenises with it
    store = ResultStore(tmp_path / "store")
    outcome = run_sweep(spec, plan, sweep_id="broken", store=store, runs_dir=str(tmp_path / "runs"))
    rows = _rows(tmp_path / "store", "broken")
    assert outcome.progress.failed == len(rows) == 3
    for r in rows:
        assert r["status"] == "failed" and r["epsilon"] is None and r["weighted_f1"] is None
        assert r["error"] and "\n" not in r["error"] and len(r["error"]) < 600, r["error"]
