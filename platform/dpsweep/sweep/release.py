"""Random-stopping tuning (Papernot & Steinke, ICLR 2022): the ε of the released model.

In a sweep with `privacy.tuning`, each ε target runs a random number K of trials (drawn
from the distribution the theorem assumes, never chosen after seeing a score), every trial
of the target shares one privacy curve (σ, q, T fixed per target; the searched settings
do not touch privacy), the search is non-adaptive (random), and only the best trial by
validation score is released. The release ε then covers the whole tuning process, and it
is computed with dp-accounting's RDP repeat-and-select bound. The validation scores that
pick the winner are treated as outside ε, as everywhere in dpsweep.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np

from dpsweep.settings import TrialConfig
from dpsweep.sweep.spec import SweepSpec, Tuning
from dpsweep.train.plan import plan_steps


@dataclass(frozen=True)
class ReleasePlan:
    """The privacy curve every trial of one target shares, and its release ε."""

    sigma: float
    steps: int
    sample_rate: float
    epsilon_release: float
    feasible: bool = True
    reason: str = ""

    def trial_overrides(self) -> dict[str, float | int]:
        """What pins every trial of the target to this curve (σ, and T as a step cap)."""
        return {"sigma": self.sigma, "max_steps": self.steps}


def plan_release(spec: SweepSpec, *, epsilon: float, n_units: int) -> ReleasePlan:
    """Fix (σ, T) for a DP target of a random-stopping sweep and compute its release ε.

    tuning.target "release": T (σ given) or σ (calibrated) so that the release ε <= the
    target; "trial": the ordinary per-trial calibration, the release ε reported beside it.
    """
    from dpsweep.privacy.tuning import (
        TrialPrivacy,
        calibrate_trial_steps_for_release,
        release_epsilon,
    )

    tuning: Tuning = spec.tuning
    base = spec.base_for(epsilon)
    cap = plan_steps(base.override(sigma=base.sigma or 1.0), n_train=n_units, cross_check=False)
    q, max_steps = cap.sample_rate, _step_cap(base, cap.steps_per_epoch)
    kw = dict(mean_trials=tuning.mean_trials, distribution=tuning.distribution, delta=base.delta)
    if tuning.target == "release":
        if base.sigma is not None:
            sigma = base.sigma
            steps = calibrate_trial_steps_for_release(target_release_epsilon=epsilon, sigma=sigma, sample_rate=q,
                                                      max_steps=max_steps, **kw)
        else:
            sigma, steps = _sigma_for_release(epsilon, q, max_steps, kw), max_steps
    else:
        trial = plan_steps(base, n_train=n_units)
        sigma, steps = trial.sigma, trial.steps if trial.feasible else 0
    if steps < 1:
        return ReleasePlan(sigma, 0, q, math.inf, feasible=False,
                           reason=f"no step fits a release ε of {epsilon:g} at σ={sigma:.3g}; raise sigma")
    eps = release_epsilon(trials=[TrialPrivacy(sigma=sigma, sample_rate=q, steps=steps)], **kw)
    return ReleasePlan(sigma, steps, q, eps)


def _step_cap(base: TrialConfig, per_epoch: int) -> int:
    cap = max(1, math.floor(base.max_epochs * per_epoch))
    return min(cap, base.max_steps) if base.max_steps is not None else cap


def _sigma_for_release(epsilon: float, q: float, steps: int, kw: dict) -> float:
    """The smallest σ (to 0.5%) whose release ε after `steps` steps is within `epsilon`."""
    from dpsweep.privacy.tuning import TrialPrivacy, release_epsilon

    def fits(sigma: float) -> bool:
        return release_epsilon(trials=[TrialPrivacy(sigma=sigma, sample_rate=q, steps=steps)], **kw) <= epsilon

    low, high = 0.3, 1.0
    while not fits(high):
        low, high = high, high * 2
        if high > 1e4:
            return high
    while high / low > 1.005:
        mid = math.sqrt(low * high)
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def draw_trials(tuning: Tuning) -> int:
    """K, the number of trials of one target, drawn with OS entropy (never from a stored seed).

    K may be 0 (Poisson): then the target runs and releases nothing; redrawing would be
    another distribution, which the theorem does not cover.
    """
    from dpsweep.privacy.tuning import draw_trial_count

    rng = np.random.default_rng(secrets.randbits(128))
    return int(draw_trial_count(mean_trials=tuning.mean_trials, distribution=tuning.distribution, rng=rng))


def mark_released(store, rows: list[dict], *, metric: str = "weighted_f1") -> dict | None:
    """Rewrite the best completed row of one target with released = 1 (validation metric; ties:
    lower ε, then trial id); returns it, or None when no trial completed."""
    done = [r for r in rows if r["status"] == "completed" and r.get(metric) is not None]
    if not done:
        return None
    best = sorted(done, key=lambda r: (-r[metric], r["epsilon"], r["trial_id"]))[0]
    if best.get("released") != 1:
        best = {**best, "released": 1}
        store.append(best, overwrite=True)
    return best
