"""The sweep overhead report: parts add up, shares are of the driver-side wall time."""

from __future__ import annotations

import pytest

from dpsweep.bench.sweep import summarize
from dpsweep.sweep.callbacks import TrialTiming


def test_summary_splits_trial_time_into_parts():
    timings = [TrialTiming("a", 8.0, driver_seconds=10.0, trial_seconds=9.0,
                           parts={"load_seconds": 1.0, "cache_seconds": 0.5, "train_seconds": 6.0,
                                  "eval_seconds": 1.0}),
               TrialTiming("b", 8.0, driver_seconds=20.0, trial_seconds=18.0,
                           parts={"load_seconds": 2.0, "worker_start_seconds": 4.0, "train_seconds": 10.0,
                                  "eval_seconds": 1.0})]
    report = summarize(timings, space="s.yaml", workers=1, wall_seconds=25.0)
    assert report["trial_wall_seconds"] == 30.0
    shares = [v for k, v in report.items() if k.startswith("share_")]
    assert sum(shares) == pytest.approx(1.0)
    # framework 1 + 2, loading 1 + 2, worker start 4, other 0.5 + 1: 11.5 of 30
    assert report["overhead_share"] == pytest.approx(11.5 / 30)
    assert report["share_train"] == pytest.approx(16 / 30)
