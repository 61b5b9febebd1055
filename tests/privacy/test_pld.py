"""epsilon_pld: dp-accounting's PLD agrees with Opacus' PRV and with the exact Gaussian ε."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
from scipy import optimize, stats

from dpsweep.errors import ConfigError
from dpsweep.privacy import compute_epsilon, epsilon_pld

# σ x q x T at δ = 1e-5, minus q = 1, T = 300 at σ 0.6 and 1 (ε 539 and 223: Opacus PRV alone
# takes 3-15 s there); full batches are also checked against the exact Gaussian below.
SLOW_FOR_PRV = {(0.6, 1.0, 300), (1.0, 1.0, 300)}
GRID = [h for h in itertools.product([0.6, 1.0, 2.0], [0.01, 0.1, 1.0], [10, 300]) if h not in SLOW_FOR_PRV]


def prv(sigma: float, q: float, steps: int) -> float:
    with warnings.catch_warnings():  # Opacus' PRV divides by log(1 - q) = -inf at q = 1
        warnings.simplefilter("ignore", RuntimeWarning)
        return compute_epsilon(sigma=sigma, sample_rate=q, steps=steps, delta=1e-5, accountant="prv")


@pytest.mark.parametrize(("sigma", "q", "steps"), GRID)
def test_prv_is_an_upper_estimate_close_to_pld(sigma, q, steps):
    # a 1e-3 grid keeps the 16 PLDs to ~3 s; it only raises ε (pessimistic), so the checks are no weaker
    pld = epsilon_pld(sigma=sigma, sample_rate=q, steps=steps, delta=1e-5, value_discretization_interval=1e-3)
    ref = prv(sigma, q, steps)
    assert ref >= pld - 0.05
    # within 10%, plus Opacus' own additive error bound (eps_error 0.01): at ε ≈ 0.07 that is 15%
    assert abs(ref - pld) <= 0.10 * pld + 0.02


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """ε of a Gaussian mechanism with μ = sensitivity/std (Balle & Wang 2018, Theorem 8)."""
    def excess(eps: float) -> float:
        return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps + stats.norm.logcdf(-eps / mu - mu / 2)) - delta
    return optimize.brentq(excess, 0.0, 500.0, xtol=1e-12)


@pytest.mark.parametrize(("sigma", "steps"), [(1.0, 10), (1.0, 300), (2.0, 300)])
def test_full_batch_is_the_exact_gaussian(sigma, steps):
    # q = 1: T steps at σ are one Gaussian with μ = √T/σ; the pessimistic PLD sits just above it
    pld = epsilon_pld(sigma=sigma, sample_rate=1.0, steps=steps, delta=1e-5, value_discretization_interval=1e-3)
    exact = exact_gaussian_epsilon(math.sqrt(steps) / sigma, 1e-5)
    assert exact - 1e-6 <= pld <= exact + 2e-3


def test_default_grid_reference_history():
    assert epsilon_pld(sigma=1.16, sample_rate=1 / 11, steps=264, delta=1e-5) == pytest.approx(7.9647, abs=1e-3)


def test_no_steps_is_zero():
    assert epsilon_pld(sigma=1.0, sample_rate=0.1, steps=0, delta=1e-5) == 0.0


@pytest.mark.parametrize("kwargs", [
    dict(sigma=0.0), dict(sample_rate=0.0), dict(sample_rate=1.5), dict(steps=-1), dict(steps=2.5),
    dict(delta=1.0), dict(value_discretization_interval=0.0), dict(value_discretization_interval=math.nan),
])
def test_bad_inputs_raise_one_line_config_errors(kwargs):
    args = dict(sigma=1.0, sample_rate=0.1, steps=10, delta=1e-5) | kwargs
    with pytest.raises(ConfigError) as info:
        epsilon_pld(**args)
    assert "\n" not in str(info.value)


def test_numeric_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        epsilon_pld(1.0, 0.1, 10, 1e-5)  # type: ignore[misc]
