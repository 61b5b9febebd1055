"""Sweeps that say what their ε covers: random-stopping release ε, and nothing private on disk.

Each test runs a real sweep on a local Ray (about a minute on 2 busy cores).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow.compute as pc
import pytest

from dpsweep.cli import main
from dpsweep.data import DataOptions, load_corpus
from dpsweep.results import ResultStore

pytestmark = pytest.mark.ray
LOSS_VALUE = re.compile(r"loss[\"'=: ]+-?\d*\.\d", re.IGNORECASE)


def _rows(store: Path, sweep_id: str) -> list[dict]:
    table = ResultStore(store).read("tiny-mimic")
    return table.filter(pc.equal(table["sweep_id"], sweep_id)).to_pylist()


def test_random_stopping_sweep_releases_one_trial_per_target_within_its_budget(write_space, tmp_path, capsys):
    space = write_space(
        privacy={"epsilons": [3, 8], "delta": 1e-5,
                 "tuning": {"method": "random-stopping", "distribution": "logarithmic", "mean_trials": 1.5,
                            "target": "release"}},
        search={"rank": {"dist": "choice", "values": [2, 4]}, "lr": {"dist": "loguniform", "low": 1e-3, "high": 1e-2},
                "batch_size": 64, "max_epochs": 2},
        sampler={"name": "random"}, trials_per_target=None)
    text = space.read_text().replace("trials_per_target: null\n", "")
    space.write_text(text)
    assert main(["sweep", str(space), "--name", "rs", "--runs-dir", str(tmp_path / "runs")]) == 0
    rows = _rows(tmp_path / "store", "rs")
    for target in (3.0, 8.0):
        mine = [r for r in rows if r["epsilon_target"] == target]
        assert mine and all(r["tuning_trials"] == len(mine) for r in mine)  # K drawn once per target
        assert all(r["epsilon_scope"] == "release" and r["epsilon"] <= r["epsilon_release"] for r in mine)
        assert all(r["epsilon_release"] <= target for r in mine)
        released = [r for r in mine if r["released"] == 1]
        completed = [r for r in mine if r["status"] == "completed"]
        assert len(released) == 1 and released[0]["weighted_f1"] == max(r["weighted_f1"] for r in completed)
    out = capsys.readouterr().out
    assert "released models, one per target" in out and "ε release" in out


def test_dp_sweep_leaves_no_training_signal_or_report_text_on_disk(write_space, tmp_path, synth_mimic, monkeypatch):
    """Logs, Ray's session folder, Tune's run folders, the store and the report: grepped whole."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))  # short: Ray's socket paths
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    try:
        space = write_space(privacy={"epsilons": [8], "delta": 1e-5}, trials_per_target=1)
        log = tmp_path / "sweep.log"
        code = os.system(f"{_python()} -m dpsweep.cli sweep {space} --name leak --runs-dir {tmp_path / 'runs'} "
                         f"> {log} 2>&1 </dev/null")
        assert code == 0, log.read_text()[-2000:]
        assert main(["report", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "report")]) == 0
        corpus = load_corpus("mimic-cxr", synth_mimic, DataOptions())
        needles = {t[len(t) // 2 : len(t) // 2 + 30] for t in corpus.train.texts if len(t) > 60}
        scanned = 0
        for root in (ray_tmp, tmp_path):
            for folder, _, files in os.walk(root):
                for name in files:
                    path = Path(folder, name)
                    if not path.is_file() or path.is_symlink():  # Ray's sockets and links
                        continue
                    data = path.read_bytes().decode("utf-8", "ignore")
                    scanned += 1
                    # a loss value ("loss 0.6931", "loss": 0.69, loss=0.69); the tokenizer's vocabulary
                    # holds the word with an integer id, which is no value
                    assert LOSS_VALUE.search(data) is None, f"{folder}/{name} holds a loss value"
                    hit = next((n for n in needles if n in data), None)
                    assert hit is None, f"{folder}/{name} holds report text"
        assert scanned > 20 and math.isfinite(_rows(tmp_path / "store", "leak")[0]["epsilon"])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _python() -> str:
    import sys

    return sys.executable
