"""Best-of-random-K release ε (Papernot & Steinke), the trial-count draws, calibration, composition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp_module
from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsweep.errors import ConfigError
from dpsweep.privacy import (
    TrialPrivacy,
    TuningDistribution,
    calibrate_trial_steps_for_release,
    composed_epsilon,
    draw_trial_count,
    epsilon_pld,
    release_epsilon,
)
from dpsweep.privacy.tuning import RDP_ORDERS, _tnb_gamma, trial_rdp

# Papernot & Steinke's setting: one trial is RDP ε 8.00 at δ 1e-5; 10 trials on average
REFERENCE_TRIAL = TrialPrivacy(sigma=0.6158, sample_rate=0.01, steps=1000)
REFERENCE = {"poisson": 14.17, "geometric": 12.79, "logarithmic": 11.67}
DISTRIBUTIONS = [d.value for d in TuningDistribution]


def single_rdp_epsilon(trial: TrialPrivacy, delta: float = 1e-5) -> float:
    accountant = RdpAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(trial.sample_rate, dp_event.GaussianDpEvent(trial.sigma)), trial.steps))
    return accountant.get_epsilon(delta)


def direct_repeat_and_select(trial: TrialPrivacy, mean: float, distribution: str, delta: float = 1e-5) -> float:
    """dp-accounting's own RepeatAndSelectDpEvent, as its documentation builds it."""
    accountant = RdpAccountant()
    inner = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(trial.sample_rate, dp_event.GaussianDpEvent(trial.sigma)), trial.steps)
    accountant.compose(dp_event.RepeatAndSelectDpEvent(inner, mean, TuningDistribution(distribution).shape))
    return accountant.get_epsilon(delta)


def release(trials, mean=10.0, distribution="logarithmic", delta=1e-5) -> float:
    return release_epsilon(trials=trials, mean_trials=mean, distribution=distribution, delta=delta)


def test_reference_single_trial_is_rdp_epsilon_8():
    assert single_rdp_epsilon(REFERENCE_TRIAL) == pytest.approx(8.00, abs=0.01)


@pytest.mark.parametrize(("distribution", "expected"), sorted(REFERENCE.items()))
def test_reference_release_figures(distribution, expected):
    assert release([REFERENCE_TRIAL], distribution=distribution) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize(("trial", "mean"), [
    (REFERENCE_TRIAL, 10.0), (TrialPrivacy(sigma=1.2, sample_rate=0.05, steps=300), 3.5),
    (TrialPrivacy(sigma=2.0, sample_rate=1.0, steps=20), 1.0),
])
def test_identical_trials_equal_repeat_and_select_event(distribution, trial, mean):
    expected = direct_repeat_and_select(trial, mean, distribution)
    assert release([trial, trial, trial], mean=mean, distribution=distribution) == expected


def test_dominated_trials_do_not_change_the_release():
    # more noise, same q and T: a pointwise smaller RDP curve, so the max is the reference trial's
    quieter = TrialPrivacy(sigma=1.5, sample_rate=0.01, steps=1000)
    fewer = TrialPrivacy(sigma=0.6158, sample_rate=0.01, steps=10)
    assert release([quieter, REFERENCE_TRIAL, fewer]) == release([REFERENCE_TRIAL])


def test_mixed_trials_cost_at_least_each_alone():
    a = TrialPrivacy(sigma=0.7, sample_rate=0.1, steps=100)  # few noisy-ish steps, large q
    b = TrialPrivacy(sigma=1.2, sample_rate=0.005, steps=5000)  # many steps, small q
    both = release([a, b])
    assert both >= max(release([a]), release([b]))


trial_strategy = st.builds(TrialPrivacy, sigma=st.floats(0.5, 4.0), sample_rate=st.floats(0.001, 1.0),
                           steps=st.integers(1, 3000))


@settings(max_examples=15, deadline=None)
@given(trial=trial_strategy, mean=st.floats(1.0, 50.0), distribution=st.sampled_from(DISTRIBUTIONS))
def test_release_costs_at_least_one_trial(trial, mean, distribution):
    # one trial's RDP ε from the same (memoised) curve the release starts from
    single, _order = rdp_module.compute_epsilon(RDP_ORDERS, trial_rdp(trial), 1e-5)
    assert release([trial], mean=mean, distribution=distribution) >= single - 1e-9


@settings(max_examples=15, deadline=None)
@given(trial=trial_strategy, mean=st.floats(1.0, 50.0), extra=st.floats(0.0, 50.0),
       distribution=st.sampled_from(DISTRIBUTIONS))
def test_release_is_monotone_in_mean_trials(trial, mean, extra, distribution):
    fewer = release([trial], mean=mean, distribution=distribution)
    assert release([trial], mean=mean + extra, distribution=distribution) >= fewer - 1e-9


def test_no_steps_release_nothing_private():
    assert release([TrialPrivacy(sigma=1.0, sample_rate=0.1, steps=0)]) == 0.0


# -- the number of trials ----------------------------------------------------------------

def theorem_pmf(distribution: str, mean: float, k: int) -> float:
    """P(K = k) as Papernot & Steinke define it (Poisson; truncated negative binomial, Def. 1)."""
    if distribution == "poisson":
        return math.exp(-mean) * mean**k / math.factorial(k)
    gamma = _tnb_gamma(TuningDistribution(distribution).shape, mean)
    if distribution == "geometric":
        return gamma * (1 - gamma) ** (k - 1)
    return (1 - gamma) ** k / (k * math.log(1 / gamma))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_draws_have_the_assumed_mean_and_distribution(distribution):
    rng = np.random.default_rng(20220425)
    draws = np.array([draw_trial_count(mean_trials=10, distribution=distribution, rng=rng) for _ in range(20_000)])
    # standard error of the mean: 0.2% (Poisson), 0.7% (geometric), 1.2% (logarithmic, heavy tail)
    assert draws.mean() == pytest.approx(10, rel=0.03)
    for k in (1, 2, 5):  # frequencies follow the theorem's pmf, not just its mean
        assert np.mean(draws == k) == pytest.approx(theorem_pmf(distribution, 10, k), abs=0.01)
    assert draws.min() >= (0 if distribution == "poisson" else 1)


def test_poisson_may_draw_zero_trials():
    rng = np.random.default_rng(0)
    assert 0 in {draw_trial_count(mean_trials=1, distribution="poisson", rng=rng) for _ in range(200)}


def test_draw_refuses_a_legacy_random_state():
    with pytest.raises(ConfigError, match="Generator"):
        draw_trial_count(mean_trials=10, distribution="geometric", rng=np.random.RandomState(0))


# -- calibration -------------------------------------------------------------------------

@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_calibration_takes_the_largest_steps_within_target(distribution):
    kwargs = dict(sigma=1.0, sample_rate=0.05, mean_trials=10, distribution=distribution, delta=1e-5)
    steps = calibrate_trial_steps_for_release(target_release_epsilon=8, max_steps=100_000, **kwargs)
    trial = dict(sigma=1.0, sample_rate=0.05)
    assert 0 < steps < 100_000
    assert release_epsilon(trials=[TrialPrivacy(steps=steps, **trial)], mean_trials=10,
                           distribution=distribution, delta=1e-5) <= 8
    assert release_epsilon(trials=[TrialPrivacy(steps=steps + 1, **trial)], mean_trials=10,
                           distribution=distribution, delta=1e-5) > 8


def test_calibration_edges():
    kwargs = dict(sigma=1.0, sample_rate=0.05, mean_trials=10, distribution="poisson", delta=1e-5)
    assert calibrate_trial_steps_for_release(target_release_epsilon=0.01, max_steps=1000, **kwargs) == 0
    assert calibrate_trial_steps_for_release(target_release_epsilon=500, max_steps=1000, **kwargs) == 1000


# -- composition for adaptive sweeps ---------------------------------------------------

def test_composed_single_trial_is_its_pld_epsilon():
    trial = TrialPrivacy(sigma=1.0, sample_rate=0.05, steps=200)
    assert composed_epsilon(trials=[trial], delta=1e-5) == pytest.approx(
        epsilon_pld(sigma=1.0, sample_rate=0.05, steps=200, delta=1e-5, value_discretization_interval=1e-3), abs=1e-9)


def test_composed_trials_add_up():
    a = TrialPrivacy(sigma=1.0, sample_rate=0.05, steps=200)
    b = TrialPrivacy(sigma=0.8, sample_rate=0.02, steps=400)
    both = composed_epsilon(trials=[a, b, TrialPrivacy(sigma=2.0, sample_rate=0.1, steps=0)], delta=1e-5)
    assert both > max(composed_epsilon(trials=[a], delta=1e-5), composed_epsilon(trials=[b], delta=1e-5))
    # two copies of a trial are that trial run twice as long
    assert composed_epsilon(trials=[a, a], delta=1e-5) == pytest.approx(
        epsilon_pld(sigma=1.0, sample_rate=0.05, steps=400, delta=1e-5, value_discretization_interval=1e-3), abs=2e-3)


def test_composed_without_steps_is_zero():
    assert composed_epsilon(trials=[TrialPrivacy(sigma=1.0, sample_rate=0.1, steps=0)], delta=1e-5) == 0.0


# -- input checks ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(trials=[]), dict(trials="abc"), dict(trials=[(1.0, 0.1, 10)]), dict(mean_trials=0.5),
    dict(mean_trials=math.inf), dict(distribution="uniform"), dict(delta=0.0),
])
def test_bad_release_inputs_raise_one_line_config_errors(kwargs):
    args = dict(trials=[REFERENCE_TRIAL], mean_trials=10, distribution="poisson", delta=1e-5) | kwargs
    with pytest.raises(ConfigError) as info:
        release_epsilon(**args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [dict(sigma=0.0), dict(sample_rate=2.0), dict(steps=-3), dict(steps=1.5)])
def test_trial_privacy_checks_its_fields(kwargs):
    with pytest.raises(ConfigError):
        TrialPrivacy(**(dict(sigma=1.0, sample_rate=0.1, steps=10) | kwargs))


def test_trial_privacy_is_keyword_only():
    with pytest.raises(TypeError):
        TrialPrivacy(1.0, 0.1, 10)  # type: ignore[misc]


def test_distribution_names_parse_case_insensitively():
    assert release([REFERENCE_TRIAL], distribution=" Geometric ") == release(
        [REFERENCE_TRIAL], distribution=TuningDistribution.GEOMETRIC)
