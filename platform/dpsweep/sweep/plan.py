"""The resolved plan of a sweep: what `--dry-run` prints, checked without starting Ray.

For each ε target it shows how many trials run, what is searched, and the step range the
σ range implies once the budget fixes the steps (σ low -> fewest steps, σ high -> most,
capped by max_epochs), so a user sees infeasible corners before spending compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from dpsweep.sweep.spec import Param, SweepSpec
from dpsweep.train.plan import plan_steps


@dataclass(frozen=True)
class TargetPlan:
    epsilon: float
    trials: int
    params: tuple[Param, ...]           # what the trials of this target search
    sample_rate: float
    steps_per_epoch: int
    useful_sigma: tuple[float, float] | None  # σ spending ε in one epoch .. in max_epochs
    steps_range: tuple[int, int]        # calibrated steps at the searched σ range's ends
    note: str = ""
    release: Any = None                 # random stopping: the target's ReleasePlan (sweep.release)

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.params)


@dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    dataset: str
    n_train: int
    n_val: int
    targets: tuple[TargetPlan, ...]
    # The corpus read while checking the spec, reused by the driver's shared frozen-layer
    # cache instead of reading the data twice. Holds report text: never printed or stored.
    corpus: Any = field(default=None, repr=False, compare=False)
    read_seconds: float | None = None  # reading the corpus in the driver (the sweep's only read)

    def lines(self) -> list[str]:
        s, r = self.spec, self.spec.resources
        read = (f"; read once, in the driver, in {self.read_seconds:.1f} s (trials never read the data folder)"
                if self.read_seconds is not None else "")
        out = [f"sweep {s.name} ({s.source}): dataset {self.dataset} ({s.base.dataset_format}, "
               f"{self.n_train} train / {self.n_val} val{read}), model {s.base.model}, "
               f"max length {s.base.max_length}",
               f"search: {', '.join(f'{p.key} {p.describe()}' for p in s.params) or 'nothing'}; "
               f"sampler {s.sampler} (seed {s.seed}); δ={s.base.delta:g}, accountant {s.base.accountant}",
               f"resources: {r.workers_per_trial} worker(s) per trial x {r.cpus_per_worker:g} CPU"
               f"{f' + {r.gpus_per_worker:g} GPU' if r.gpus_per_worker else ''}, "
               f"at most {r.max_concurrent_trials} trials at once; store {s.store}"]
        for t in self.targets:
            head = "ε=inf (non-private)" if math.isinf(t.epsilon) else f"ε={t.epsilon:g}"
            count = f"a random number (mean {s.tuning.mean_trials:g}) of" if s.tuning else str(t.trials)
            line = (f"  {head}: {count} trials over {', '.join(t.searched) or 'nothing'}; "
                    f"q={t.sample_rate:.4g}, {t.steps_per_epoch} steps/epoch")
            sigma = next((p for p in t.params if p.key == "sigma"), None)
            if sigma is not None:
                line += f"; σ {sigma.describe()} -> {t.steps_range[0]}..{t.steps_range[1]} steps"
            else:
                line += f"; {t.steps_range[1]} steps"
            if t.release is not None:
                line += (f"; every trial σ={t.release.sigma:.4g}, {t.release.steps} steps; ε of the release "
                         f"(best of a random number of trials, tuning included) {t.release.epsilon_release:.4g}"
                         if t.release.feasible else f"; {t.release.reason}")
            out.append(line + (f" ({t.note})" if t.note else ""))
        if s.tuning is not None:
            out.append(f"random stopping: trials per target drawn from a {s.tuning.distribution} distribution "
                       f"of mean {s.tuning.mean_trials:g}; only the best trial of each target is released")
        else:
            out.append(f"total: {s.total_trials} trials; each ε is per trial and excludes tuning")
        return out


def plan_sweep(spec: SweepSpec, *, n_train: int, n_val: int, dataset: str) -> SweepPlan:
    """Calibrate every target (arithmetic only: no Ray, no torch).

    The searched σ range is narrowed, per target, to the σ that are useful for it: from
    the σ that spends ε in one epoch (below it no epoch is affordable) to the σ that
    spends it in max_epochs (above it the epoch cap binds and budget goes unspent).
    """
    return SweepPlan(spec, dataset, n_train, n_val, tuple(_plan_target(spec, eps, n_train) for eps in spec.epsilons))


def _plan_target(spec: SweepSpec, eps: float, n_train: int) -> TargetPlan:
    target = _plan_target_steps(spec, eps, n_train)
    if spec.tuning is None or math.isinf(eps):
        return target
    from dpsweep.sweep.release import plan_release

    release = plan_release(spec, epsilon=eps, n_units=n_train)
    return replace(target, release=release, steps_range=(release.steps, release.steps))


def _plan_target_steps(spec: SweepSpec, eps: float, n_train: int) -> TargetPlan:
    params = spec.params_for(eps)
    base = spec.base_for(eps)
    base = base.override(batch_size=_bound(params, "batch_size", base.batch_size, 0),
                         max_epochs=_bound(params, "max_epochs", base.max_epochs, 1))
    sigma = next((p for p in params if p.key == "sigma"), None)
    if math.isinf(eps) or (sigma is None and base.sigma is None):
        plan = plan_steps(base.override(sigma=None), n_train=n_train, cross_check=False)
        return TargetPlan(eps, spec.trials_per_target, params, plan.sample_rate, plan.steps_per_epoch, None,
                          (plan.steps, plan.steps))
    probe = plan_steps(base.override(sigma=None), n_train=n_train, cross_check=False)
    useful = _useful_sigma(base, probe.sample_rate, probe.steps_per_epoch, probe.steps)
    note = ""
    if sigma is not None:
        low, high = max(sigma.bounds[0], useful[0]), min(sigma.bounds[1], useful[1])
        if low <= high:
            if (low, high) != sigma.bounds:
                note = f"σ narrowed from {sigma.describe()} to the useful {low:.3g}..{high:.3g}"
            sigma = replace(sigma, low=low, high=high) if sigma.dist != "choice" else sigma
            params = tuple(sigma if p.key == "sigma" else p for p in params)
        else:
            note = (f"no σ in {sigma.describe()} is useful for this budget: trials will be infeasible or "
                    f"under-spend; widen sigma to cover {useful[0]:.3g}..{useful[1]:.3g}")
        lo, hi = sigma.bounds
    else:
        lo = hi = base.sigma
    ends = [plan_steps(base.override(sigma=s), n_train=n_train, cross_check=False) for s in (lo, hi)]
    return TargetPlan(eps, spec.trials_per_target, params, probe.sample_rate, probe.steps_per_epoch, useful,
                      tuple(p.steps if p.feasible else 0 for p in ends), note)


def _useful_sigma(base, q: float, per_epoch: int, max_steps: int) -> tuple[float, float]:
    from dpsweep.privacy import sigma_for_budget

    kw = dict(target_epsilon=base.epsilon, sample_rate=q, delta=base.delta, accountant=base.accountant)
    return (sigma_for_budget(steps=min(per_epoch, max_steps), **kw), sigma_for_budget(steps=max_steps, **kw))


def _bound(params: tuple[Param, ...], key: str, default, end: int):
    """The low (end=0) or high (end=1) value of a searched key, else the fixed default."""
    p = next((p for p in params if p.key == key), None)
    return type(default)(p.bounds[end]) if p else default
