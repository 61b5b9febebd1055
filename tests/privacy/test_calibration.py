"""Calibration never overspends, takes the largest T (smallest σ), and explains itself."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsweep.errors import ConfigError
from dpsweep.privacy import (
    Accountant,
    StepCalibration,
    compute_epsilon,
    max_steps_for_budget,
    sigma_for_budget,
)
from dpsweep.privacy import calibration as calibration_module

Q = 256 / 3000


def eps(sigma: float, q: float, steps: int, delta: float, acc: str) -> float:
    return compute_epsilon(sigma=sigma, sample_rate=q, steps=steps, delta=delta, accountant=acc)


def check_steps_contract(cal: StepCalibration, *, target: float, sigma: float, q: float,
                         delta: float, acc: str, max_steps: int, min_steps: int) -> None:
    """Everything a StepCalibration promises, checked against compute_epsilon."""
    assert 0 <= cal.steps <= max_steps
    assert cal.epsilon == eps(sigma, q, cal.steps, delta, acc) if cal.steps else cal.epsilon == 0.0
    assert cal.epsilon <= target
    assert cal.capped == (cal.steps == max_steps)
    if not cal.capped:
        assert eps(sigma, q, cal.steps + 1, delta, acc) > target
    assert cal.feasible == (cal.steps >= min_steps)
    assert (cal.reason != "") == (cal.capped or not cal.feasible)
    assert "\n" not in cal.reason


@pytest.mark.parametrize("acc", ["prv", "rdp"])
def test_typical_trial(acc):
    cal = max_steps_for_budget(target_epsilon=8, sigma=1.0, sample_rate=Q, delta=1e-5,
                               accountant=acc, max_steps=1000)
    check_steps_contract(cal, target=8, sigma=1.0, q=Q, delta=1e-5, acc=acc, max_steps=1000, min_steps=1)
    assert not cal.capped and cal.feasible and cal.steps > 100


def test_prv_allows_more_steps_than_rdp():
    kwargs = dict(target_epsilon=3, sigma=1.0, sample_rate=0.02, delta=1e-5, max_steps=5000)
    assert (max_steps_for_budget(**kwargs, accountant="prv").steps
            > max_steps_for_budget(**kwargs, accountant="rdp").steps)


def test_capped_when_the_budget_outlasts_max_steps():
    cal = max_steps_for_budget(target_epsilon=8, sigma=3.0, sample_rate=0.005, delta=1e-5, max_steps=500)
    assert cal.capped and cal.feasible and cal.steps == 500
    assert "max_steps=500" in cal.reason and cal.epsilon < 8


def test_infeasible_when_not_even_one_step_fits():
    cal = max_steps_for_budget(target_epsilon=0.5, sigma=0.5, sample_rate=0.3, delta=1e-5, max_steps=100)
    assert cal.steps == 0 and cal.epsilon == 0.0 and not cal.feasible and not cal.capped
    assert "no step" in cal.reason and "min_steps=1" in cal.reason


def test_infeasible_below_min_steps():
    kwargs = dict(target_epsilon=1.0, sigma=1.0, sample_rate=0.1, delta=1e-5, max_steps=1000)
    free = max_steps_for_budget(**kwargs)
    cal = max_steps_for_budget(**kwargs, min_steps=free.steps + 1)
    assert cal.steps == free.steps and not cal.feasible
    assert f"min_steps={free.steps + 1}" in cal.reason


@pytest.mark.filterwarnings("ignore:Optimal order")  # RDP's remark on its order grid
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sigma=st.floats(0.5, 3.0), q=st.floats(0.001, 0.3), target=st.floats(0.5, 10.0),
       delta=st.sampled_from([1e-5, 1e-6]), max_steps=st.integers(1, 3000),
       min_steps=st.integers(1, 50))
def test_rdp_calibration_contract(sigma, q, target, delta, max_steps, min_steps):
    min_steps = min(min_steps, max_steps)
    cal = max_steps_for_budget(target_epsilon=target, sigma=sigma, sample_rate=q, delta=delta,
                               accountant="rdp", max_steps=max_steps, min_steps=min_steps)
    check_steps_contract(cal, target=target, sigma=sigma, q=q, delta=delta, acc="rdp",
                         max_steps=max_steps, min_steps=min_steps)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sigma=st.floats(0.5, 3.0), q=st.floats(0.001, 0.3), target=st.floats(0.5, 10.0),
       delta=st.sampled_from([1e-5, 1e-6]), max_steps=st.integers(1, 3000))
def test_prv_calibration_contract(sigma, q, target, delta, max_steps):
    cal = max_steps_for_budget(target_epsilon=target, sigma=sigma, sample_rate=q, delta=delta,
                               accountant="prv", max_steps=max_steps)
    check_steps_contract(cal, target=target, sigma=sigma, q=q, delta=delta, acc="prv",
                         max_steps=max_steps, min_steps=1)


@pytest.mark.parametrize("acc, target, q, steps", [
    ("prv", 8.0, Q, 300), ("prv", 1.0, 0.01, 2000), ("rdp", 3.0, 0.05, 500), ("prv", 0.5, 0.2, 50),
])
def test_sigma_for_budget_is_the_smallest_grid_sigma_within_budget(acc, target, q, steps):
    sigma = sigma_for_budget(target_epsilon=target, sample_rate=q, steps=steps, delta=1e-5, accountant=acc)
    assert round(sigma / 0.01) == pytest.approx(sigma / 0.01)
    assert eps(sigma, q, steps, 1e-5, acc) <= target
    assert eps(sigma - 0.01, q, steps, 1e-5, acc) > target


@pytest.mark.filterwarnings("ignore:Optimal order")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(q=st.floats(0.001, 0.3), target=st.floats(0.5, 10.0), steps=st.integers(1, 3000),
       delta=st.sampled_from([1e-5, 1e-6]), acc=st.sampled_from(["rdp", "rdp", "prv"]))
def test_sigma_for_budget_contract(q, target, steps, delta, acc):
    sigma = sigma_for_budget(target_epsilon=target, sample_rate=q, steps=steps, delta=delta, accountant=acc)
    assert eps(sigma, q, steps, delta, acc) <= target
    if sigma > 0.01:
        assert eps(round(sigma - 0.01, 12), q, steps, delta, acc) > target


def test_sigma_for_budget_with_coarse_tolerance():
    sigma = sigma_for_budget(target_epsilon=3.0, sample_rate=0.05, steps=400, delta=1e-5,
                             sigma_tolerance=0.25)
    assert eps(sigma, 0.05, 400, 1e-5, "prv") <= 3.0 < eps(sigma - 0.25, 0.05, 400, 1e-5, "prv")


def test_then_max_steps_at_that_sigma_reaches_the_steps():
    sigma = sigma_for_budget(target_epsilon=2.0, sample_rate=0.04, steps=700, delta=1e-5)
    cal = max_steps_for_budget(target_epsilon=2.0, sigma=sigma, sample_rate=0.04, delta=1e-5,
                               max_steps=10_000)
    assert cal.steps >= 700


@pytest.mark.filterwarnings("ignore:Optimal order")
def test_unreachable_target_says_so():
    with pytest.raises(ConfigError, match="raise target_epsilon") as err:
        sigma_for_budget(target_epsilon=0.05, sample_rate=0.01, steps=100, delta=1e-5, accountant="rdp")
    assert "prv" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("call", [
    lambda: max_steps_for_budget(target_epsilon=1, sigma=1, sample_rate=0.1, delta=1e-5,
                                 accountant="gdp", max_steps=10),
    lambda: sigma_for_budget(target_epsilon=1, sample_rate=0.1, steps=10, delta=1e-5,
                             accountant=Accountant.GDP),
])
def test_gdp_is_refused_for_targets(call):
    with pytest.raises(ConfigError, match="under-report") as err:
        call()
    assert "'prv'" in str(err.value) and "\n" not in str(err.value)


GOOD_STEPS = dict(target_epsilon=1.0, sigma=1.0, sample_rate=0.1, delta=1e-5, max_steps=100, min_steps=1)
GOOD_SIGMA = dict(target_epsilon=1.0, sample_rate=0.1, steps=100, delta=1e-5, sigma_tolerance=0.01)


@pytest.mark.parametrize("field, value", [
    ("target_epsilon", 0.0), ("target_epsilon", -1.0), ("target_epsilon", math.inf),
    ("target_epsilon", math.nan), ("sigma", 0.0), ("sample_rate", 0.0), ("sample_rate", 1.01),
    ("delta", 0.0), ("delta", 1.0), ("max_steps", 0), ("min_steps", 0), ("min_steps", 101),
    ("accountant", "moments"),
])
def test_max_steps_bad_inputs(field, value):
    with pytest.raises(ConfigError) as err:
        max_steps_for_budget(**{**GOOD_STEPS, field: value})
    assert repr(value) in str(err.value) or str(value) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("field, value", [
    ("target_epsilon", math.inf), ("target_epsilon", 0.0), ("sample_rate", -0.1), ("delta", 2.0),
    ("steps", 0), ("sigma_tolerance", 0.0), ("sigma_tolerance", math.nan),
])
def test_sigma_for_budget_bad_inputs(field, value):
    with pytest.raises(ConfigError) as err:
        sigma_for_budget(**{**GOOD_SIGMA, field: value})
    assert repr(value) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Optimal order")
def test_disagreeing_fast_path_falls_back_to_opacus(monkeypatch):
    """Should a future Opacus compute differently, the answer still comes from Opacus."""
    import dpsweep.privacy.models as models

    monkeypatch.setattr(models, "fast_epsilon", lambda acc, s, q, t, d: 0.9 * compute_epsilon(
        sigma=s, sample_rate=q, steps=t, delta=d, accountant=acc))
    kwargs = dict(target_epsilon=3.0, sigma=1.0, sample_rate=0.05, delta=1e-5, accountant="rdp")
    with pytest.warns(RuntimeWarning, match="disagrees with Opacus"):
        cal = calibration_module.max_steps_for_budget(**kwargs, max_steps=2000)
    check_steps_contract(cal, target=3.0, sigma=1.0, q=0.05, delta=1e-5, acc="rdp",
                         max_steps=2000, min_steps=1)
    with pytest.warns(RuntimeWarning, match="disagrees with Opacus"):
        sigma = sigma_for_budget(target_epsilon=3.0, sample_rate=0.05, steps=300, delta=1e-5,
                                 accountant="rdp")
    assert eps(sigma, 0.05, 300, 1e-5, "rdp") <= 3.0 < eps(sigma - 0.01, 0.05, 300, 1e-5, "rdp")
