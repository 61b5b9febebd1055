"""Fit a trial to its ε budget: the most steps for a given σ, or the least σ for given steps.

Both searches probe the accountant through ``accountants.fast_epsilon`` (bit-identical to
Opacus, cheaper) steered by ``models``; the answer is then confirmed with the real Opacus
accountant (the value ``compute_epsilon`` returns), and the reported ε is that
confirmation's value. Should the two ever disagree (a different Opacus version), the
search is redone on the real accountant alone: slower, never wrong.

GDP is refused here: it can under-report ε for small sample rates and many steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Real

from dpsweep.errors import ConfigError
from dpsweep.privacy.accountants import (
    Accountant,
    PrvGridTooLarge,
    opacus_epsilon,
    parse_accountant,
)
from dpsweep.privacy.checks import (
    check_delta,
    check_sample_rate,
    check_sigma,
    check_steps,
    check_target_epsilon,
)
from dpsweep.privacy.models import SigmaModel, StepModel
from dpsweep.privacy.search import find_boundary

SIGMA_MAX = 10_000.0  # beyond this no training signal survives; a target still unmet is unreachable


@dataclass(frozen=True)
class StepCalibration:
    """How many steps fit the budget at a fixed σ, and why that number is what it is."""

    steps: int  # largest T with compute_epsilon(T) <= target, capped at max_steps
    epsilon: float  # compute_epsilon at `steps` (the accountant's exact value, <= target)
    feasible: bool  # False when steps < min_steps (σ too small for even min_steps steps)
    capped: bool  # True when max_steps was reached before the budget ran out
    reason: str  # one human line explaining infeasible/capped, "" otherwise


def calibration_accountant(accountant: Accountant | str) -> Accountant:
    """The accountant to calibrate with; GDP is refused (it can under-report ε)."""
    acc = parse_accountant(accountant)
    if acc is Accountant.GDP:
        raise ConfigError(
            "accountant 'gdp' cannot calibrate to an epsilon target, got accountant='gdp': "
            "GDP can under-report epsilon for small sample rates and many steps; "
            "use accountant='prv' (tight) or 'rdp' (looser, fast)"
        )
    return acc


def max_steps_for_budget(
    *,
    target_epsilon: float,
    sigma: float,
    sample_rate: float,
    delta: float,
    accountant: Accountant | str = "prv",
    max_steps: int,
    min_steps: int = 1,
) -> StepCalibration:
    """The largest number of DP-SGD steps at (σ, q) whose ε stays within ``target_epsilon``.

    Returns T with ε(T) <= target and ε(T + 1) > target, or T == max_steps (capped).
    ``feasible`` is False when T < min_steps: the noise is too small for the budget to
    pay for even ``min_steps`` useful steps.
    """
    acc = calibration_accountant(accountant)
    check_target_epsilon(target_epsilon)
    check_sigma(sigma)
    check_sample_rate(sample_rate)
    check_delta(delta)
    check_steps(max_steps, name="max_steps", minimum=1)
    check_steps(min_steps, name="min_steps", minimum=1)
    if min_steps > max_steps:
        raise ConfigError(
            f"min_steps must be <= max_steps, got min_steps={min_steps}, max_steps={max_steps}; "
            "lower min_steps or raise max_steps"
        )
    target, max_steps, min_steps = float(target_epsilon), int(max_steps), int(min_steps)
    params = dict(sigma=float(sigma), sample_rate=float(sample_rate), delta=float(delta), target=target)
    model = StepModel(acc, **params)
    steps = find_boundary(model.within, lo=0, hi=max_steps + 1, propose=model.propose)
    epsilon = opacus_epsilon(acc, model.sigma, model.sample_rate, steps, model.delta)
    if epsilon != model.epsilon(steps):
        _warn_disagreement(acc, f"T={steps}", model.epsilon(steps), epsilon)
        model = StepModel(acc, **params, epsilon_fn=opacus_epsilon)
        steps = find_boundary(model.within, lo=0, hi=max_steps + 1, propose=model.propose)
        epsilon = model.epsilon(steps)
    return _step_result(model, steps, epsilon, max_steps=max_steps, min_steps=min_steps)


def _one_step(model: StepModel) -> str:
    """ε of one step, for a message; PRV cannot account for the tiniest σ (ε far beyond any budget)."""
    try:
        return f"{model.epsilon(1):.4g}"
    except PrvGridTooLarge:
        return "more than the PRV accountant can measure"


def _warn_disagreement(acc: Accountant, where: str, fast: float, real: float) -> None:
    warnings.warn(f"dpsweep's fast {acc.value} path disagrees with Opacus at {where} "
                  f"({fast!r} vs {real!r}); searching again with Opacus alone",
                  RuntimeWarning, stacklevel=3)


def _step_result(model: StepModel, steps: int, epsilon: float, *, max_steps: int,
                 min_steps: int) -> StepCalibration:
    budget = f"epsilon={model.target:g} (delta={model.delta:g}, {model.acc.value})"
    noise = f"sigma={model.sigma:g} at q={model.sample_rate:g}"
    if steps < min_steps:
        spent = f"{steps} step(s)" if steps else f"no step (one step spends {_one_step(model)})"
        reason = (f"{noise} allows {spent} within {budget}, fewer than min_steps={min_steps}: "
                  "raise sigma, lower the sample rate or raise the budget")
        return StepCalibration(steps, epsilon, feasible=False, capped=False, reason=reason)
    if steps == max_steps:
        reason = (f"max_steps={max_steps} reached with epsilon {epsilon:.4g} spent of {budget}: "
                  "the step cap binds before the budget")
        return StepCalibration(steps, epsilon, feasible=True, capped=True, reason=reason)
    return StepCalibration(steps, epsilon, feasible=True, capped=False, reason="")


def sigma_for_budget(
    *,
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: Accountant | str = "prv",
    sigma_tolerance: float = 0.01,
) -> float:
    """The smallest σ on the grid k * sigma_tolerance whose ε after ``steps`` steps is within target.

    Rounded up: ε(σ) <= target and ε(σ - sigma_tolerance) > target, so the budget holds.
    ConfigError when no σ up to SIGMA_MAX reaches the target (the accountant's ε has a
    floor: about 0.01 for PRV, about 0.1 for RDP's default orders at δ = 1e-5).
    """
    acc = calibration_accountant(accountant)
    check_target_epsilon(target_epsilon)
    check_sample_rate(sample_rate)
    check_delta(delta)
    check_steps(steps, minimum=1)
    if not (isinstance(sigma_tolerance, Real) and 0 < sigma_tolerance <= 1):
        raise ConfigError(f"sigma_tolerance must satisfy 0 < tolerance <= 1, got {sigma_tolerance!r}; "
                          "use e.g. 0.01")
    params = dict(sample_rate=float(sample_rate), steps=int(steps), delta=float(delta),
                  target=float(target_epsilon), tolerance=float(sigma_tolerance))
    model = SigmaModel(acc, **params)
    k_max = math.ceil(SIGMA_MAX / model.tolerance)
    k = find_boundary(model.too_small, lo=0, hi=k_max + 1, propose=model.propose) + 1
    checked = min(k, k_max)
    real = opacus_epsilon(acc, model.sigma(checked), model.sample_rate, model.steps, model.delta)
    if real != model.epsilon(checked):
        _warn_disagreement(acc, f"sigma={model.sigma(checked)}", model.epsilon(checked), real)
        model = SigmaModel(acc, **params, epsilon_fn=opacus_epsilon)
        k = find_boundary(model.too_small, lo=0, hi=k_max + 1, propose=model.propose) + 1
    if k > k_max:
        raise ConfigError(
            f"no sigma up to {SIGMA_MAX:g} brings epsilon within {model.target:g} for {model.steps} "
            f"steps at q={model.sample_rate:g}, delta={model.delta:g} ({acc.value} reports "
            f"{model.epsilon(k_max):.3g} even there); raise target_epsilon"
            + (" or use accountant='prv' (lower floor)" if acc is Accountant.RDP else ""))
    return model.sigma(k)
