"""Progress lines of a trial: the ε they print is the accountant's, and there are about ten."""

from __future__ import annotations

import pytest

from dpsweep.privacy import compute_epsilon
from dpsweep.settings import TrialConfig
from dpsweep.train.loop import Progress, epsilon_after
from dpsweep.train.plan import StepPlan


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_progress_epsilon_is_the_accountants(accountant):
    config = TrialConfig(dataset_format="mimic-cxr", data_path="unused", epsilon=8.0, delta=1e-5,
                         accountant=accountant)
    plan = StepPlan(sample_rate=1 / 6, steps_per_epoch=6, steps=18, sigma=0.81, feasible=True)
    epsilon_of = epsilon_after(config, plan)
    for t in (1, 7, 18):
        # the same number, bit for bit: fast_epsilon only caches the per-step RDP curve
        assert epsilon_of(t) == compute_epsilon(sigma=0.81, sample_rate=1 / 6, steps=t, delta=1e-5,
                                                accountant=accountant)


def test_no_epsilon_without_dp():
    config = TrialConfig(dataset_format="mimic-cxr", data_path="unused", epsilon=float("inf"))
    plan = StepPlan(sample_rate=1 / 6, steps_per_epoch=6, steps=18, sigma=0.0, feasible=True)
    assert epsilon_after(config, plan) is None


@pytest.mark.parametrize(("total", "lines"), [(3, 3), (10, 10), (18, 9), (19, 10), (1000, 10)])
def test_about_ten_progress_lines(total, lines):
    printed: list[str] = []
    progress = Progress(total, printed.append, lambda t: 0.5 * t)
    for step in range(1, total + 1):
        progress.step(step, 0.0)
    assert len(printed) == lines
    assert printed[-1].startswith(f"step {total}/{total}, ε so far")
