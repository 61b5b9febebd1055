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


def plan_steps(config: TrialConfig, *, n_train: int) -> StepPlan:
    """Calibrate (steps, sigma) for the trial's ε target, capped by max_epochs."""
    from dpsweep.privacy import max_steps_for_budget, sigma_for_budget

    q = sample_rate_for(n_train=n_train, batch_size=config.batch_size)
    per_epoch = math.ceil(n_train / config.batch_size)
    max_steps = max(1, math.floor(config.max_epochs * per_epoch))
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
