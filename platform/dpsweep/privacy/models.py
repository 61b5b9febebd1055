"""Cheap predictors that steer the calibration searches towards the ε = target boundary.

They only decide *where* to ask the accountant next; every answer that moves a bracket
is an exact accountant value (``accountants.fast_epsilon`` unless another ``epsilon_fn``
is given), so a poor prediction costs extra calls, never a wrong result.
"""

from __future__ import annotations

import math

import numpy as np
from opacus.accountants.analysis import gdp as gdp_analysis

from dpsweep.privacy import fastpath
from dpsweep.privacy.accountants import Accountant, EpsilonFn, PrvGridTooLarge, fast_epsilon

_TINY = 1e-300  # keeps log() finite should an accountant ever report ε = 0
MAX_OFFSET_DRIFT = 0.5  # log-ε units: the factor between accountants drifts by less than e^0.5
_GDP_FLOOR = 1e-9  # GDP's ε reaches 0 at large σ where real accountants stay near 0.01


class StepModel:
    """ε(T) of the chosen accountant, predicted as RDP's ε(T) times a factor fitted on the fly.

    RDP ε(T) is exact and costs microseconds once the per-step curve of (σ, q) is cached,
    and PRV's ε(T) follows it up to a factor that drifts slowly with log T. The factor is
    learned from every exact evaluation (a line in log T through the two nearest), so
    after two or three accountant calls the prediction is within a step or two of the
    boundary.
    """

    def __init__(self, acc: Accountant, *, sigma: float, sample_rate: float, delta: float, target: float,
                 epsilon_fn: EpsilonFn | None = None):
        self.acc, self.sigma, self.sample_rate, self.delta = acc, sigma, sample_rate, delta
        self._epsilon_fn = epsilon_fn if epsilon_fn is not None else fast_epsilon
        self.log_target = math.log(target)
        self.target = target
        self._offset: dict[int, float] = {}  # T -> log ε_acc(T) - log ε_rdp(T)

    def epsilon(self, steps: int) -> float:
        """Exact accountant ε at ``steps`` (memoised in accountants)."""
        return self._epsilon_fn(self.acc, self.sigma, self.sample_rate, steps, self.delta)

    def within(self, steps: int) -> bool:
        """Exact test ε(steps) <= target; records the RDP offset for the model.

        A PRV grid too large to compute counts as over budget: grids grow with T, so it
        only happens past the boundary (or the final confirmation reports it).
        """
        try:
            eps = self.epsilon(steps)
        except PrvGridTooLarge:
            return False
        self._offset[steps] = math.log(max(eps, _TINY)) - self._log_rdp(steps)
        return eps <= self.target

    def propose(self, lo: int, hi: int) -> int:
        """Largest T in (lo, hi) the model believes within budget (``lo`` if none)."""
        a, b = lo, hi
        while b - a > 1:
            mid = (a + b) // 2
            if self._log_model(mid) <= self.log_target:
                a = mid
            else:
                b = mid
        return a

    def _log_rdp(self, steps: int) -> float:
        rdp = fastpath.quiet_rdp_epsilon(self.sigma, self.sample_rate, steps, self.delta)
        return math.log(max(rdp, _TINY))

    def _log_model(self, steps: int) -> float:
        if not self._offset:
            return self._log_rdp(steps)
        known = sorted(self._offset)
        offset = interpolate(math.log(steps), [math.log(t) for t in known], [self._offset[t] for t in known])
        return self._log_rdp(steps) + offset


class SigmaModel:
    """ε(σ) on the grid σ_k = k * tolerance, predicted as Gaussian-DP's ε(σ) times a fitted factor.

    The closed-form GDP (Poisson CLT) ε costs about a millisecond for any σ and has the
    right overall shape; its gap to the chosen accountant drifts slowly with log σ and is
    learned from each exact answer, as in StepModel. (A fresh σ is expensive for the real
    accountant: its RDP curve and PRV grid both change.)
    """

    def __init__(self, acc: Accountant, *, sample_rate: float, steps: int, delta: float,
                 target: float, tolerance: float, epsilon_fn: EpsilonFn | None = None):
        self.acc, self.sample_rate, self.steps, self.delta = acc, sample_rate, steps, delta
        self._epsilon_fn = epsilon_fn if epsilon_fn is not None else fast_epsilon
        self.target, self.tolerance = target, tolerance
        self.log_target = math.log(target)
        self._offset: dict[int, float] = {}  # k -> log ε_acc(σ_k) - log ε_gdp(σ_k)

    def sigma(self, k: int) -> float:
        """σ at grid index k (rounded so that 0.01 * 123 reads 1.23)."""
        return round(k * self.tolerance, 12)

    def epsilon(self, k: int) -> float:
        """Exact accountant ε at σ_k."""
        return self._epsilon_fn(self.acc, self.sigma(k), self.sample_rate, self.steps, self.delta)

    def too_small(self, k: int) -> bool:
        """Exact test ε(σ_k) > target (σ_k adds too little noise).

        A PRV grid too large to compute counts as too little noise: grids shrink as σ
        grows, so it only happens below the boundary (or the final confirmation reports it).
        """
        try:
            eps = self.epsilon(k)
        except PrvGridTooLarge:
            return True
        log_gdp = self._log_gdp(k)
        if math.isfinite(log_gdp):
            self._offset[k] = math.log(max(eps, _TINY)) - log_gdp
        return eps > self.target

    def propose(self, lo: int, hi: int) -> int:
        """Largest k in (lo, hi) the model believes too small (``lo`` if none)."""
        a, b = lo, hi
        while b - a > 1:
            mid = (a + b) // 2
            if self._log_model(mid) > self.log_target:
                a = mid
            else:
                b = mid
        return a

    def _log_gdp(self, k: int) -> float:
        eps = gdp_epsilon(sigma=self.sigma(k), sample_rate=self.sample_rate, steps=self.steps,
                          delta=self.delta)
        return math.log(max(eps, _GDP_FLOOR))

    def _log_model(self, k: int) -> float:
        if not self._offset:
            return self._log_gdp(k)
        known = sorted(self._offset)
        offset = interpolate(math.log(self.sigma(k)), [math.log(self.sigma(j)) for j in known],
                             [self._offset[j] for j in known])
        return self._log_gdp(k) + offset


def interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    """The line through the two observations nearest x, evaluated at x (one observation: flat).

    Local on purpose: a far observation (say the σ = SIGMA_MAX probe) must not flatten the
    model near the boundary, or the search creeps one grid step per call. The result is
    kept within MAX_OFFSET_DRIFT of the nearest observation, so a steep local line cannot
    bend the far model back across the target.
    """
    nearest = sorted(range(len(xs)), key=lambda i: abs(xs[i] - x))[:2]
    if len(nearest) == 1 or xs[nearest[0]] == xs[nearest[1]]:
        return ys[nearest[0]]
    i, j = nearest
    value = ys[i] + (ys[j] - ys[i]) * (x - xs[i]) / (xs[j] - xs[i])
    return min(max(value, ys[i] - MAX_OFFSET_DRIFT), ys[i] + MAX_OFFSET_DRIFT)


def gdp_epsilon(*, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """Gaussian-DP ε (Opacus' Poisson formula): a shape to steer by, never an answer.

    0.0 where δ is met without any ε; inf where Opacus' root finder gives up (ε > 500).
    """
    with np.errstate(over="ignore"):
        mu = gdp_analysis.compute_mu_poisson(steps=steps, noise_multiplier=sigma, sample_rate=sample_rate)
    if not math.isfinite(mu):
        return math.inf
    if gdp_analysis.delta_eps_mu(eps=0.0, mu=mu) <= delta:
        return 0.0
    try:
        return float(gdp_analysis.eps_from_mu(mu=mu, delta=delta))
    except (ValueError, RuntimeError, OverflowError):
        return math.inf
