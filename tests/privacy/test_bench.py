"""The calibration benchmark runs and reports what it promises (timing is not asserted)."""

from __future__ import annotations

from dpsweep.privacy.bench import bench_calibration, typical_cases


def test_bench_reports_summary_fields():
    result = bench_calibration(n_calls=2, seed=1)
    for summary in (result, result["sigma_for_budget"]):
        assert summary["n_calls"] == 2
        assert 0 < summary["median_s"] <= summary["p90_s"] <= summary["max_s"]


def test_typical_cases_are_seeded():
    assert typical_cases(5, 3) == typical_cases(5, 3) != typical_cases(5, 4)
