"""ε of a person who contributes several records: group privacy for Poisson-sampled DP-SGD.

DP-SGD here samples and clips per record (per report). A patient with k reports is not
protected at the ε of one record: each of their k reports is Poisson-sampled on its own
with probability q, so the number m of them in a batch is Binomial(k, q), and with
worst-case aligned gradients their clipped sum has norm m·C. Removing the patient then
turns N(0, σ²C²) into the mixture Σ_m Binom(m; k, q)·N(m·C, σ²C²): dp-accounting's
``MixtureOfGaussiansDpEvent`` (Choquette-Choo et al. 2023, arXiv:2310.15526), a tight
dominating pair for group-level DP-SGD (Ganesh 2024, arXiv:2401.10294). Composed T times
under the PLD accountant (the RDP accountant in dp-accounting 0.6.0 does not support it).

This is far tighter than the textbook group-privacy conversion (ε·k with δ growing
exponentially in k) and still sound.
"""

from __future__ import annotations

import functools
from numbers import Integral

import numpy as np
from dp_accounting import dp_event
from scipy import stats

from dpsweep.errors import ConfigError
from dpsweep.privacy.checks import check_delta, check_sample_rate, check_sigma, check_steps
from dpsweep.privacy.pld import check_discretization, pld_epsilon_of_event

# Building a mixture-of-Gaussians PLD is pure Python in dp-accounting and scales with the
# number of grid points: 1e-4 takes about a minute for k = 5, 5e-3 a few seconds. The
# connect-the-dots discretisation is pessimistic, so the coarser grid only raises ε,
# by under 0.002 at the reference history (σ 1.16, q 1/11, T 264: k = 5 gives 65.55).
GROUP_VALUE_DISCRETIZATION = 5e-3


def check_group_size(group_size: int) -> None:
    """k must be an integer >= 1 (bool is refused)."""
    if isinstance(group_size, bool) or not isinstance(group_size, Integral) or group_size < 1:
        raise ConfigError(
            f"group_size must be an integer >= 1, got {group_size!r}; "
            "pass the most records one person has (k = 1 is ordinary record-level DP)"
        )


def group_dp_event(*, sigma: float, sample_rate: float, steps: int, group_size: int) -> dp_event.DpEvent:
    """The DpEvent of T DP-SGD steps as seen by a group of ``group_size`` records.

    Per step: a mixture of Gaussians with sensitivities 0..k (in units of C) weighted by
    Binomial(k, q). At q = 1 every record is in every batch: a Gaussian of sensitivity k,
    i.e. noise multiplier σ/k (written so, as dp-accounting's mixture path is slow).
    """
    k = int(group_size)
    if sample_rate == 1:
        step: dp_event.DpEvent = dp_event.GaussianDpEvent(noise_multiplier=float(sigma) / k)
    else:
        weights = stats.binom.pmf(np.arange(k + 1), k, float(sample_rate))
        step = dp_event.MixtureOfGaussiansDpEvent(
            standard_deviation=float(sigma),
            sensitivities=[float(m) for m in range(k + 1)],
            sampling_probs=[float(w) for w in weights],
        )
    return dp_event.SelfComposedDpEvent(event=step, count=int(steps))


def group_epsilon(
    *,
    sigma: float,
    sample_rate: float,
    steps: int,
    delta: float,
    group_size: int,
    value_discretization_interval: float = GROUP_VALUE_DISCRETIZATION,
) -> float:
    """ε at δ for a person with ``group_size`` records after T Poisson-sampled DP-SGD steps.

    This is the sound bound for record-level rows: when a sweep trains with one record
    per report, the ε a patient actually gets is ``group_epsilon`` with k = the most
    reports any one patient has (the patient with the most reports is the worst case).
    k = 1 equals the ordinary ε (``epsilon_pld``). Typical cost: about 1 s for k = 1 and
    a few seconds for k = 5 at the default grid (memoised).
    """
    check_sigma(sigma)
    check_sample_rate(sample_rate)
    check_delta(delta)
    check_steps(steps)
    check_group_size(group_size)
    check_discretization(value_discretization_interval)
    if steps == 0:
        return 0.0
    return _group_epsilon(float(sigma), float(sample_rate), int(steps), float(delta),
                          int(group_size), float(value_discretization_interval))


@functools.lru_cache(maxsize=1024)
def _group_epsilon(sigma: float, sample_rate: float, steps: int, delta: float,
                   group_size: int, interval: float) -> float:
    """Memoised: a group PLD costs seconds, and every row of a trial asks for the same one."""
    event = group_dp_event(sigma=sigma, sample_rate=sample_rate, steps=steps, group_size=group_size)
    return pld_epsilon_of_event(event, delta=delta, value_discretization_interval=interval)
