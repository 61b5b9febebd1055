"""ε of a hyperparameter sweep: release only the best of a random number of trials.

Papernot & Steinke (ICLR 2022, "Hyperparameter tuning with Renyi differential privacy",
arXiv:2110.03620): if every trial is an independent run of the same DP mechanism Q
(hyperparameters drawn at random from a fixed distribution are part of Q), the number K
of trials is random (Poisson, or truncated negative binomial: geometric, logarithmic),
and only the best trial is released, then the release costs a little more than one trial
rather than K trials. ``release_epsilon`` computes that bound with dp-accounting's RDP
accountant (the only one that supports ``RepeatAndSelectDpEvent``).

What the theorem does not cover:

- Adaptive searchers (Optuna TPE, Bayesian optimisation, successive halving on scores)
  choose trial i+1 from the scores of trials 1..i, so the trials are neither independent
  nor identically distributed: that is adaptive composition, and the honest bound is
  ``composed_epsilon`` of every trial that touched the training data.
- A fixed number of trials, or redrawing K until K >= 1 (a different distribution).

The score each trial reports comes from validation data that is treated as outside ε:
the guarantee is for the training records only. The validation records themselves get no
protection, and choosing "the best" by them is post-processing of each trial's output.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from numbers import Real

import numpy as np
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp_module
from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant

from dpsweep.errors import ConfigError
from dpsweep.privacy.checks import (
    check_delta,
    check_sample_rate,
    check_sigma,
    check_steps,
    check_target_epsilon,
)
from dpsweep.privacy.pld import check_discretization, dp_sgd_event, pld_epsilon_of_event

# dp-accounting's default orders: the reference figures (Papernot & Steinke setting,
# σ 0.6158, q 0.01, T 1000, 10 trials) are reproduced on exactly this grid.
RDP_ORDERS: tuple[float, ...] = tuple(float(a) for a in rdp_module.DEFAULT_RDP_ORDERS)

# PLD spacing for composing many heterogeneous trials: 1e-3 is 8x faster than 1e-4 and,
# being pessimistic, only raises ε (by about 1e-3 on 20 trials of ε ~ 77).
COMPOSED_VALUE_DISCRETIZATION = 1e-3


class TuningDistribution(str, Enum):
    """Distribution of the number of trials K, as the repeat-and-select theorem needs it."""

    POISSON = "poisson"  # K >= 0; K = 0 means release nothing
    GEOMETRIC = "geometric"  # K >= 1; truncated negative binomial with shape 1
    LOGARITHMIC = "logarithmic"  # K >= 1; truncated negative binomial with shape 0

    @property
    def shape(self) -> float:
        """dp-accounting's ``RepeatAndSelectDpEvent`` shape: inf, 1 or 0."""
        return {"poisson": math.inf, "geometric": 1.0, "logarithmic": 0.0}[self.value]


def parse_tuning_distribution(value: TuningDistribution | str) -> TuningDistribution:
    """The TuningDistribution named by ``value`` (case-insensitive); ConfigError naming the choices."""
    if isinstance(value, TuningDistribution):
        return value
    if isinstance(value, str):
        try:
            return TuningDistribution(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(d.value for d in TuningDistribution)
    raise ConfigError(f"distribution must be one of {choices}, got {value!r}; "
                      "use distribution='logarithmic' (smallest release epsilon, K >= 1)")


@dataclass(frozen=True, kw_only=True)
class TrialPrivacy:
    """The privacy inputs of one DP-SGD trial: noise multiplier σ, sample rate q, steps T."""

    sigma: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        check_sigma(self.sigma)
        check_sample_rate(self.sample_rate)
        check_steps(self.steps)


def check_mean_trials(mean_trials: float) -> None:
    """The mean number of trials must be finite and >= 1 (the theorem's, and dp-accounting's, range)."""
    if not (isinstance(mean_trials, Real) and 1 <= mean_trials < math.inf):
        raise ConfigError(f"mean_trials must be a finite number >= 1, got {mean_trials!r}; "
                          "pass the expected number of trials, e.g. mean_trials=10")


def check_trials(trials: Sequence[TrialPrivacy]) -> None:
    """At least one trial, each a TrialPrivacy."""
    if isinstance(trials, (str, bytes)) or not isinstance(trials, Sequence) or len(trials) == 0:
        raise ConfigError(f"trials must be a non-empty sequence of TrialPrivacy, got {trials!r}; "
                          "pass e.g. [TrialPrivacy(sigma=1.0, sample_rate=0.01, steps=1000)]")
    bad = [t for t in trials if not isinstance(t, TrialPrivacy)]
    if bad:
        raise ConfigError(f"every trial must be a TrialPrivacy, got {bad[0]!r}; "
                          "wrap (sigma, sample_rate, steps) in TrialPrivacy(...)")


@functools.lru_cache(maxsize=1024)
def _step_rdp(sigma: float, sample_rate: float) -> np.ndarray:
    """RDP of one Poisson-sampled Gaussian step on ``RDP_ORDERS`` (read-only, memoised).

    T steps are T times this curve, exactly what ``RdpAccountant`` adds up for a
    ``SelfComposedDpEvent`` (0 + T·curve), so calibration can probe T without recomputing.
    """
    accountant = RdpAccountant(orders=RDP_ORDERS)
    accountant.compose(dp_sgd_event(sigma=sigma, sample_rate=sample_rate, steps=1))
    curve = accountant.rdp
    curve.setflags(write=False)
    return curve


def trial_rdp(trial: TrialPrivacy) -> np.ndarray:
    """The RDP curve of one trial on ``RDP_ORDERS`` (inf where dp-accounting's series did not converge)."""
    return trial.steps * _step_rdp(float(trial.sigma), float(trial.sample_rate))


def max_rdp_curve(trials: Sequence[TrialPrivacy]) -> np.ndarray:
    """The pointwise maximum of the trials' RDP curves: one curve that bounds every trial."""
    return np.max(np.stack([trial_rdp(t) for t in trials]), axis=0)


def _release_epsilon_of_curve(curve: np.ndarray, *, mean_trials: float,
                              distribution: TuningDistribution, delta: float) -> float:
    """Repeat-and-select on one RDP curve, then RDP -> (ε, δ) with dp-accounting's conversion."""
    # dp-accounting's RepeatAndSelectDpEvent takes a single event; its theorem code is the
    # private _compute_rdp_repeat_and_select, called here on the max curve (pinned 0.6.x).
    released = rdp_module._compute_rdp_repeat_and_select(
        RDP_ORDERS, curve, float(mean_trials), distribution.shape)
    epsilon, _order = rdp_module.compute_epsilon(RDP_ORDERS, released, float(delta))
    return float(epsilon)


def release_epsilon(
    *,
    trials: Sequence[TrialPrivacy],
    mean_trials: float,
    distribution: TuningDistribution | str,
    delta: float,
) -> float:
    """ε at δ of releasing only the best trial of a sweep with a random number K of trials.

    ``trials`` must bound every trial the sweep could run: list each privacy setting the
    search space can produce (or ones that dominate them), not only the trials that ran,
    since the bound has to hold before K and the hyperparameters are drawn. Their RDP
    curves are combined by a pointwise maximum (the RDP of a random choice among them is
    at most that), and Papernot & Steinke's theorem for K ~ ``distribution`` with mean
    ``mean_trials`` is applied to it. Identical trials give exactly dp-accounting's
    ``RepeatAndSelectDpEvent`` answer. 0.0 when no trial takes a step.
    """
    check_trials(trials)
    check_mean_trials(mean_trials)
    dist = parse_tuning_distribution(distribution)
    check_delta(delta)
    if all(t.steps == 0 for t in trials):
        return 0.0
    return _release_epsilon_of_curve(max_rdp_curve(trials), mean_trials=mean_trials,
                                     distribution=dist, delta=delta)


@functools.lru_cache(maxsize=64)
def _tnb_gamma(shape: float, mean_trials: float) -> float:
    """γ of the truncated negative binomial with this shape and mean, as dp-accounting solves it.

    Uses dp-accounting's private ``_gamma_truncated_negative_binomial`` so the draws follow
    exactly the distribution its bound assumes (it returns the conservative γ: mean >= asked).
    """
    return float(rdp_module._gamma_truncated_negative_binomial(shape, mean_trials))


def draw_trial_count(*, mean_trials: float, distribution: TuningDistribution | str,
                     rng: np.random.Generator) -> int:
    """Draw K, the number of trials to run, from the distribution ``release_epsilon`` assumes.

    Poisson: K ~ Poisson(mean_trials), and K may be 0. The theorem counts K = 0 as a
    release of nothing, so the sweep must then run no trial and release no model (and
    say so); it must not redraw, as "redraw until K >= 1" is a different distribution.
    Geometric: P(K = k) = γ(1-γ)^(k-1), k >= 1, γ = 1/mean. Logarithmic:
    P(K = k) = (1-γ)^k / (k·ln(1/γ)), k >= 1, γ solved from the mean. Both are Papernot &
    Steinke's truncated negative binomial (shape 1 and 0) and never give 0.
    """
    check_mean_trials(mean_trials)
    dist = parse_tuning_distribution(distribution)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
                          "pass rng=numpy.random.default_rng(seed)")
    if dist is TuningDistribution.POISSON:
        return int(rng.poisson(float(mean_trials)))
    gamma = _tnb_gamma(dist.shape, float(mean_trials))
    if dist is TuningDistribution.GEOMETRIC:
        return int(rng.geometric(gamma))
    return int(rng.logseries(1.0 - gamma))  # numpy's p is 1 - γ: P(k) = -p^k / (k ln(1-p))


def calibrate_trial_steps_for_release(
    *,
    target_release_epsilon: float,
    sigma: float,
    sample_rate: float,
    mean_trials: float,
    distribution: TuningDistribution | str,
    delta: float,
    max_steps: int,
) -> int:
    """The largest T <= ``max_steps`` whose best-of-K release stays within the target ε.

    Every trial runs T steps at (σ, q); ``release_epsilon`` of such identical trials grows
    with T (RDP is monotone in T and the theorem is monotone in the curve), so a binary
    search finds it. 0 when even T = 1 exceeds the target: no sweep of that shape fits.
    """
    check_target_epsilon(target_release_epsilon)
    check_sigma(sigma)
    check_sample_rate(sample_rate)
    check_mean_trials(mean_trials)
    dist = parse_tuning_distribution(distribution)
    check_delta(delta)
    check_steps(max_steps, name="max_steps", minimum=1)
    step = _step_rdp(float(sigma), float(sample_rate))

    def fits(steps: int) -> bool:
        eps = _release_epsilon_of_curve(steps * step, mean_trials=mean_trials, distribution=dist, delta=delta)
        return eps <= target_release_epsilon

    return _largest_fitting(fits, int(max_steps))


def _largest_fitting(fits: Callable[[int], bool], max_steps: int) -> int:
    """Largest T in [1, max_steps] with fits(T) for a monotone predicate; 0 if none."""
    if fits(max_steps):
        return max_steps
    lo, hi = 0, max_steps  # invariant: lo fits (0 trivially), hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def composed_epsilon(
    *,
    trials: Sequence[TrialPrivacy],
    delta: float,
    value_discretization_interval: float = COMPOSED_VALUE_DISCRETIZATION,
) -> float:
    """ε at δ of every trial that touched the training data, composed: the bound for adaptive sweeps.

    Use it for ordinary (TPE, successive-halving) sweeps, where the repeat-and-select
    theorem does not apply. Computed with dp-accounting's PLD accountant on the
    composition of each trial's Poisson-sampled Gaussian steps. Not Opacus' PRV with a
    multi-entry history: that agrees to about 0.01 but took 250 s for 20 heterogeneous
    trials (PLD at the default spacing: about 5 s), and its grid limit refuses the large
    ε a composed sweep reaches. 0.0 when no trial takes a step.
    """
    check_trials(trials)
    check_delta(delta)
    check_discretization(value_discretization_interval)
    events = [dp_sgd_event(sigma=t.sigma, sample_rate=t.sample_rate, steps=t.steps)
              for t in trials if t.steps > 0]
    if not events:
        return 0.0
    return pld_epsilon_of_event(dp_event.ComposedDpEvent(events=events), delta=delta,
                                value_discretization_interval=value_discretization_interval)
