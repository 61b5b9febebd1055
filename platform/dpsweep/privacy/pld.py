"""ε from Google's dp-accounting privacy-loss-distribution (PLD) accountant.

A second tight accountant, written independently of Opacus' PRV: the two agree to about
0.01 (PRV adds its own error bound on top), so each checks the other. dp-accounting also
knows events Opacus has no accountant for (a mixture of Gaussians for group privacy,
heterogeneous compositions), which ``group`` and ``tuning`` build on the helpers here.

The neighbouring relation is add-or-remove-one record, as in Opacus. The PLD is built
with dp-accounting's pessimistic "connect the dots" discretisation, so a coarser
``value_discretization_interval`` gives a slightly larger ε, never a smaller one.
"""

from __future__ import annotations

import functools
import math
from numbers import Real

from dp_accounting import dp_event
from dp_accounting.pld.pld_privacy_accountant import PLDAccountant
from dp_accounting.privacy_accountant import NeighboringRelation

from dpsweep.errors import ConfigError
from dpsweep.privacy.checks import check_delta, check_sample_rate, check_sigma, check_steps

DEFAULT_VALUE_DISCRETIZATION = 1e-4  # dp-accounting's default: ε to about 1e-4


def dp_sgd_event(*, sigma: float, sample_rate: float, steps: int) -> dp_event.DpEvent:
    """The DpEvent of ``steps`` DP-SGD steps: a Poisson-sampled Gaussian composed T times.

    σ is the noise multiplier (noise std / clipping norm C), so sensitivity is 1.
    """
    gaussian = dp_event.GaussianDpEvent(noise_multiplier=float(sigma))
    step = dp_event.PoissonSampledDpEvent(sampling_probability=float(sample_rate), event=gaussian)
    return dp_event.SelfComposedDpEvent(event=step, count=int(steps))


def check_discretization(value_discretization_interval: float) -> None:
    """The PLD grid spacing must be a finite number > 0."""
    if not (isinstance(value_discretization_interval, Real) and 0 < value_discretization_interval < math.inf):
        raise ConfigError(
            f"value_discretization_interval must be a finite number > 0, got {value_discretization_interval!r}; "
            f"use {DEFAULT_VALUE_DISCRETIZATION:g} (smaller is tighter and slower)"
        )


def pld_epsilon_of_event(event: dp_event.DpEvent, *, delta: float, value_discretization_interval: float) -> float:
    """ε at δ of any DpEvent the PLD accountant supports (add-or-remove-one neighbours)."""
    accountant = PLDAccountant(
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=value_discretization_interval,
    )
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


def epsilon_pld(
    *,
    sigma: float,
    sample_rate: float,
    steps: int,
    delta: float,
    value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION,
) -> float:
    """ε of ``steps`` Poisson-sampled DP-SGD steps at (σ, q), for δ, from dp-accounting's PLD.

    The same history as ``compute_epsilon(..., accountant="prv")`` measures, from an
    independent implementation: use it to cross-check PRV, or where PRV refuses a history
    (its grid grows with ε; the PLD's does far less). q = 1 (full batch) is allowed;
    ``steps == 0`` gives 0.0.
    """
    check_sigma(sigma)
    check_sample_rate(sample_rate)
    check_delta(delta)
    check_steps(steps)
    check_discretization(value_discretization_interval)
    if steps == 0:
        return 0.0
    return _epsilon_pld(float(sigma), float(sample_rate), int(steps), float(delta),
                        float(value_discretization_interval))


@functools.lru_cache(maxsize=1024)
def _epsilon_pld(sigma: float, sample_rate: float, steps: int, delta: float, interval: float) -> float:
    """Memoised: the ε of a history never changes, and a PLD costs 0.1-2 s to build."""
    event = dp_sgd_event(sigma=sigma, sample_rate=sample_rate, steps=steps)
    return pld_epsilon_of_event(event, delta=delta, value_discretization_interval=interval)
