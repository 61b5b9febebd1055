"""`dpsweep bench scale` at a tiny size: one JSON object per size with the figures the issue names."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cli_subprocess  # the command, and one child process per size

TIMEOUT_S = 600  # two tiny sizes, each a fresh interpreter that imports torch, on a busy 2-core box


@pytest.mark.slow(reason="a benchmark command in child processes, about 30 s; `make test-slow`")
def test_bench_scale_json_at_two_tiny_sizes(tmp_path, tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "dpsweep.cli", "bench", "scale", "--studies", "120", "240", "--max-steps", "2",
         "--cache-sample", "16", "--eval-reports", "10", "--model", str(tiny_model_dir),
         "--cache-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["studies"] for r in reports] == [120, 240]
    for r in reports:
        assert r["read_seconds"] > 0 and r["tokenize_seconds"] > 0 and 0 < r["peak_rss_gb"] < 8
        assert 0 <= r["reader_child_peak_rss_gb"] < 8  # no pool below 20k files: only earlier children
        assert 0 <= r["outside_training_share"] < 1 and r["steps"] == 2 and r["step_seconds"] > 0
        assert r["eval_reports"] <= 20 and r["cache_path"] == "memory" and r["cache_seconds_per_1k"] > 0
    assert reports[1]["train_reports"] > reports[0]["train_reports"]
    assert (tmp_path / "synth-mimic-240" / "files").is_dir()  # written once, kept for the next run


def test_bench_scale_refuses_a_bad_size():
    proc = subprocess.run([sys.executable, "-m", "dpsweep.cli", "bench", "scale", "--studies", "0"],
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2 and "must be a whole number >= 1, got '0'" in proc.stderr
