"""group_epsilon: k = 1 is the ordinary ε, the reference figures, full batches, monotone in k."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsweep.errors import ConfigError
from dpsweep.privacy import epsilon_pld, group_epsilon

# σ 1.16, q 1/11, T 264, δ 1e-5: a patient with k reports
REFERENCE = {1: 7.96, 2: 18.8, 3: 32.1, 5: 65.6}


def reference_group(k: int) -> float:
    return group_epsilon(sigma=1.16, sample_rate=1 / 11, steps=264, delta=1e-5, group_size=k)


@pytest.mark.parametrize(("k", "expected"), sorted(REFERENCE.items()))
def test_reference_figures(k, expected):
    assert reference_group(k) == pytest.approx(expected, rel=0.02, abs=0.15)


def test_reference_figures_grow_with_k():
    eps = [reference_group(k) for k in sorted(REFERENCE)]
    assert eps == sorted(eps) and len(set(eps)) == len(eps)


@pytest.mark.parametrize(("sigma", "q", "steps"), [(1.16, 1 / 11, 264), (0.8, 0.02, 50)])
def test_one_record_is_the_ordinary_epsilon(sigma, q, steps):
    # the mixture with sensitivities {0, 1} is the Poisson-sampled Gaussian, built by another code path
    kwargs = dict(sigma=sigma, sample_rate=q, steps=steps, delta=1e-5, value_discretization_interval=5e-3)
    assert group_epsilon(group_size=1, **kwargs) == pytest.approx(epsilon_pld(**kwargs), abs=1e-6)


def test_full_batch_group_is_a_gaussian_of_sensitivity_k():
    # q = 1: all k records are in every batch, sensitivity k·C, i.e. noise multiplier σ/k
    assert group_epsilon(sigma=3.0, sample_rate=1.0, steps=20, delta=1e-5, group_size=3) == pytest.approx(
        epsilon_pld(sigma=1.0, sample_rate=1.0, steps=20, delta=1e-5, value_discretization_interval=5e-3), abs=1e-3)


@settings(max_examples=4, deadline=None)
@given(sigma=st.floats(0.7, 3.0), q=st.floats(0.01, 0.3), steps=st.integers(1, 40), k=st.integers(1, 3))
def test_group_epsilon_is_monotone_in_k_and_at_least_the_record_epsilon(sigma, q, steps, k):
    kwargs = dict(sigma=sigma, sample_rate=q, steps=steps, delta=1e-5, value_discretization_interval=2e-2)
    smaller = group_epsilon(group_size=k, **kwargs)
    assert group_epsilon(group_size=k + 1, **kwargs) >= smaller - 1e-9
    assert smaller >= epsilon_pld(**kwargs) - 1e-6


def test_no_steps_is_zero():
    assert group_epsilon(sigma=1.0, sample_rate=0.1, steps=0, delta=1e-5, group_size=4) == 0.0


@pytest.mark.parametrize("group_size", [0, -1, 2.0, True, "3"])
def test_bad_group_size_raises_one_line_config_error(group_size):
    with pytest.raises(ConfigError) as info:
        group_epsilon(sigma=1.0, sample_rate=0.1, steps=10, delta=1e-5, group_size=group_size)
    assert "group_size" in str(info.value) and "\n" not in str(info.value)
