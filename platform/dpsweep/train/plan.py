"""How many steps a trial may take, and with what noise, before it touches a model.

Opacus' Poisson loader samples each example with q = 1 / ceil(n / batch_size) (it takes
`1 / len(data_loader)`), so the budget is calibrated with exactly that q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dpsweep.settings import TrialConfig


@dataclass(frozen=True)
class StepPlan:
    sample_rate: float
    steps_per_epoch: int
    steps: int          # logical steps the trial will take
    sigma: float        # 0.0 without DP
    feasible: bool
    reason: str = ""    # why infeasible, or that the epoch cap bound first


def sample_rate_for(*, n_train: int, batch_size: int) -> float:
    """The Poisson sampling rate Opacus will use for this data set and batch size."""
    return 1.0 / math.ceil(n_train / batch_size)


def logical_batch_size(config: TrialConfig, *, n_train: int) -> int:
    """The expected batch: every unit with `full_batch` (q = 1, DP gradient descent), else batch_size."""
    return max(n_train, 1) if config.full_batch else config.batch_size


def plan_steps(config: TrialConfig, *, n_train: int, cross_check: bool = True) -> StepPlan:
    """Calibrate (steps, sigma) for the trial's ε target, capped by max_epochs.

    `n_train` counts privacy units (reports, or patients). With `cross_check` the plan also
    keeps dp-accounting's PLD ε within the target (the stored ε is the larger of the two).
    """
    plan = _plan_steps(config, n_train=n_train)
    if cross_check and config.private and plan.feasible:
        return _within_pld(plan, config)
    return plan


def _within_pld(plan: StepPlan, config: TrialConfig) -> StepPlan:
    """Lower the steps (σ given) or raise σ (σ calibrated) until PLD's ε fits the target too.

    PRV is about 0.01 above PLD and RDP above both, so this almost never changes the plan.
    """
    from dataclasses import replace

    from dpsweep.privacy.pld import epsilon_pld

    for _ in range(50):
        if epsilon_pld(sigma=plan.sigma, sample_rate=plan.sample_rate, steps=plan.steps,
                       delta=config.delta) <= config.epsilon:
            return plan
        if config.sigma is None:
            plan = replace(plan, sigma=plan.sigma * 1.002)
        elif plan.steps > 1:
            plan = replace(plan, steps=max(1, int(plan.steps * 0.99)))
        else:
            break
    return replace(plan, steps=0, feasible=False, reason=f"dp-accounting's PLD ε exceeds the target "
                   f"{config.epsilon:g} even after adjusting; raise sigma or the budget")


def _plan_steps(config: TrialConfig, *, n_train: int) -> StepPlan:
    from dpsweep.privacy import max_steps_for_budget, sigma_for_budget

    batch = logical_batch_size(config, n_train=n_train)
    q = sample_rate_for(n_train=n_train, batch_size=batch)
    per_epoch = math.ceil(n_train / batch)
    max_steps = max(1, math.floor(config.max_epochs * per_epoch))
    if config.max_steps is not None:
        max_steps = min(max_steps, config.max_steps)
    if not config.private:
        return StepPlan(q, per_epoch, max_steps, 0.0, True)
    if config.sigma is None:
        sigma = sigma_for_budget(target_epsilon=config.epsilon, sample_rate=q, steps=max_steps,
                                 delta=config.delta, accountant=config.accountant)
        return StepPlan(q, per_epoch, max_steps, sigma, True)
    cal = max_steps_for_budget(target_epsilon=config.epsilon, sigma=config.sigma, sample_rate=q,
                               delta=config.delta, accountant=config.accountant,
                               max_steps=max_steps, min_steps=min(per_epoch, max_steps))
    return StepPlan(q, per_epoch, cal.steps, config.sigma, cal.feasible, cal.reason)
