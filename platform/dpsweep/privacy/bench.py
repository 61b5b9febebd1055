"""Benchmark: how long one PRV calibration takes for typical sweep values.

Target: <= 1 s median per ``max_steps_for_budget`` call (a naive PRV binary search took
22 s here). Each call is timed cold (all accountant caches cleared first), as for a new
trial's (σ, q). For scale, ``opacus_prv_call`` times one plain ``PRVAccountant.get_epsilon``
at each calibrated answer.

Run ``python -m dpsweep.privacy.bench [--calls N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from opacus.accountants import PRVAccountant

from dpsweep.privacy import fastpath
from dpsweep.privacy.accountants import _fast_epsilon, _opacus_epsilon
from dpsweep.privacy.calibration import max_steps_for_budget, sigma_for_budget

TARGETS = (0.5, 1.0, 3.0, 8.0)
DELTA = 1e-5


def typical_cases(n_calls: int, seed: int) -> list[dict[str, Any]]:
    """Seeded sweep-like values: ε in TARGETS, σ in [0.5, 3], q log-uniform in [0.005, 0.2]."""
    rng = np.random.default_rng(seed)
    return [dict(target_epsilon=float(rng.choice(TARGETS)), sigma=float(rng.uniform(0.5, 3.0)),
                 sample_rate=float(np.exp(rng.uniform(np.log(0.005), np.log(0.2)))),
                 steps=int(rng.integers(100, 5001)))
            for _ in range(n_calls)]


def clear_caches() -> None:
    """Forget every memoised accountant value, so the next call is timed cold."""
    for cached in (_fast_epsilon, _opacus_epsilon, fastpath.rdp_per_step):
        cached.cache_clear()


def _summary(seconds: list[float]) -> dict[str, float | int]:
    return {"median_s": statistics.median(seconds), "p90_s": float(np.percentile(seconds, 90)),
            "max_s": max(seconds), "n_calls": len(seconds)}


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    clear_caches()
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def bench_calibration(n_calls: int = 15, seed: int = 0) -> dict[str, Any]:
    """Timings of ``max_steps_for_budget`` (PRV) over typical values, plus ``sigma_for_budget``."""
    steps_s, sigma_s, prv_s = [], [], []
    for case in typical_cases(n_calls, seed):
        common = dict(target_epsilon=case["target_epsilon"], sample_rate=case["sample_rate"],
                      delta=DELTA, accountant="prv")
        seconds, cal = _timed(partial(max_steps_for_budget, **common, sigma=case["sigma"],
                                      max_steps=case["steps"]))
        steps_s.append(seconds)
        seconds, _ = _timed(partial(sigma_for_budget, **common, steps=case["steps"]))
        sigma_s.append(seconds)
        if cal.steps:
            prv_s.append(_opacus_prv_seconds(case["sigma"], case["sample_rate"], cal.steps))
    return {**_summary(steps_s), "sigma_for_budget": _summary(sigma_s),
            "opacus_prv_call": _summary(prv_s) if prv_s else {}}


def _opacus_prv_seconds(sigma: float, sample_rate: float, steps: int) -> float:
    """Seconds of one plain ``PRVAccountant.get_epsilon`` for the history [(σ, q, steps)]."""
    accountant = PRVAccountant()
    accountant.history = [(sigma, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        accountant.get_epsilon(DELTA)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15, help="calibration calls to time (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the typical values (default 0)")
    args = parser.parse_args(argv)
    print(json.dumps(bench_calibration(args.calls, args.seed), indent=2))


if __name__ == "__main__":
    main()
