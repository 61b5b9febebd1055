"""A writer killed with SIGKILL mid-write leaves every finished row and no partial row."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dpsweep.results.store import ResultStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

# The writer appends large rows in a loop and prints "DONE <trial_id>" after each append
# returns. In "pause" mode, from the 4th trial on, it stops after the file is written and
# fsynced but before it is published under its final name, and prints "PAUSED".
WRITER = r"""
import os, sys, time
from datetime import datetime, timezone
from dpsweep.results.store import ResultStore

store, mode = ResultStore(sys.argv[1]), sys.argv[2]
padding = os.urandom(400_000).hex()  # 0.8 MB of incompressible config per row
for i in range(10_000):
    if mode == "pause" and i == 3:
        def paused_link(src, dst):
            print("PAUSED", flush=True)
            time.sleep(60)
        os.link = paused_link
    trial = f"t{i:05d}"
    store.append({
        "sweep_id": "crash", "trial_id": trial, "dataset": "mimic-cxr",
        "dataset_format": "mimic-cxr", "model": "minilm", "status": "completed",
        "epsilon_target": 1.0, "epsilon": 0.9, "delta": 1e-5, "sigma": 1.0, "clip": 1.0,
        "sample_rate": 0.01, "steps": 100, "accountant": "prv",
        "weighted_f1": 0.5, "macro_f1": 0.4, "started_at": datetime.now(timezone.utc),
        "config_json": {"trial": trial, "padding": padding},
    })
    print("DONE", trial, flush=True)
"""


def _start(root: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after(proc: subprocess.Popen[str], *, done_needed: int, until: str | None,
                delay_s: float) -> set[str]:
    """Read progress lines; SIGKILL once ``done_needed`` trials (and ``until``) are seen."""
    done: set[str] = set()
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"writer exited early: {proc.stderr.read() if proc.stderr else ''}")
        if line.startswith("DONE"):
            done.add(line.split()[1])
        if len(done) >= done_needed and (until is None or line.strip() == until):
            break
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    done |= {ln.split()[1] for ln in rest.splitlines() if ln.startswith("DONE")}
    assert proc.returncode == -signal.SIGKILL
    return done


def _check_store(root: Path, done: set[str], *, may_have_extra: int) -> None:
    table = ResultStore(root).read()
    stored = set(table["trial_id"].to_pylist())
    assert done <= stored, f"lost finished trials {sorted(done - stored)}"
    assert len(stored - done) <= may_have_extra  # published, killed before printing DONE
    for row in table.to_pylist():  # every row read is whole
        assert json.loads(row["config_json"])["trial"] == row["trial_id"]
        assert row["weighted_f1"] == 0.5 and row["epsilon"] == 0.9
    # Other readers ignore the temp file as well.
    assert len(pd.read_parquet(root)) == len(stored)
    count = duckdb.sql(f"select count(*) from read_parquet('{root}/**/*.parquet', hive_partitioning=1)")
    assert count.fetchall()[0][0] == len(stored)


def test_kill_between_write_and_publish_leaves_only_finished_rows(tmp_path: Path) -> None:
    root = tmp_path / "store"
    done = _kill_after(_start(root, "pause"), done_needed=3, until="PAUSED", delay_s=0.0)
    assert done == {"t00000", "t00001", "t00002"}
    temps = [p.name for p in (root / "dataset=mimic-cxr").iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(".crash__t00003.parquet.")
    _check_store(root, done, may_have_extra=0)


def test_kill_at_a_random_moment_of_a_write_loop(tmp_path: Path) -> None:
    root = tmp_path / "store"
    delay_s = random.Random(os.getpid()).uniform(0.0, 0.08)
    done = _kill_after(_start(root, "loop"), done_needed=2, until=None, delay_s=delay_s)
    _check_store(root, done, may_have_extra=1)
