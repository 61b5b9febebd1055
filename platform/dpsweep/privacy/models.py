"""Cheap predictors that steer the calibration searches towards the ε = target boundary.

They only decide *where* to ask the accountant next; every answer that moves a bracket
is an exact accountant value (``accountants.fast_epsilon``), so a poor prediction costs
extra calls, never a wrong result.
"""

from __future__ import annotations

import math

import numpy as np
from opacus.accountants.analysis import gdp as gdp_analysis
from scipy import optimize

from dpsweep.privacy import fastpath
from dpsweep.privacy.accountants import Accountant, PrvGridTooLarge, fast_epsilon

_TINY = 1e-300  # keeps log() finite should an accountant ever report ε = 0


class StepModel:
    """ε(T) of the chosen accountant, predicted as RDP's ε(T) times a factor fitted on the fly.

    RDP ε(T) is exact and costs microseconds once the per-step curve of (σ, q) is cached,
    and PRV's ε(T) follows it up to a factor that drifts slowly with log T. The factor is
    learned from every exact evaluation and interpolated in log T, so after two or three
    accountant calls the prediction is within a step or two of the boundary.
    """

    def __init__(self, acc: Accountant, *, sigma: float, sample_rate: float, delta: float, target: float):
        self.acc, self.sigma, self.sample_rate, self.delta = acc, sigma, sample_rate, delta
        self.log_target = math.log(target)
        self.target = target
        self._log_steps: dict[int, float] = {}
        self._offset: dict[int, float] = {}  # T -> log ε_acc(T) - log ε_rdp(T)

    def epsilon(self, steps: int) -> float:
        """Exact accountant ε at ``steps`` (memoised in accountants)."""
        return fast_epsilon(self.acc, self.sigma, self.sample_rate, steps, self.delta)

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
        xs = [math.log(t) for t in known]
        ys = [self._offset[t] for t in known]
        return self._log_rdp(steps) + float(np.interp(math.log(steps), xs, ys))


class SigmaModel:
    """ε(σ) on the grid σ_k = k * tolerance, predicted by a secant in log σ / log ε.

    ε falls roughly like 1/σ, so log ε is close to linear in log σ; the first guess comes
    from the closed-form Gaussian-DP approximation (microseconds), later ones from the
    two exact answers that bracket the target.
    """

    def __init__(self, acc: Accountant, *, sample_rate: float, steps: int, delta: float,
                 target: float, tolerance: float):
        self.acc, self.sample_rate, self.steps, self.delta = acc, sample_rate, steps, delta
        self.target, self.tolerance = target, tolerance
        self._log_eps: dict[int, float] = {}  # k -> log ε(σ_k)

    def sigma(self, k: int) -> float:
        """σ at grid index k (rounded so that 0.01 * 123 reads 1.23)."""
        return round(k * self.tolerance, 12)

    def epsilon(self, k: int) -> float:
        """Exact accountant ε at σ_k."""
        return fast_epsilon(self.acc, self.sigma(k), self.sample_rate, self.steps, self.delta)

    def too_small(self, k: int) -> bool:
        """Exact test ε(σ_k) > target (σ_k adds too little noise).

        A PRV grid too large to compute counts as too little noise: grids shrink as σ
        grows, so it only happens below the boundary (or the final confirmation reports it).
        """
        try:
            eps = self.epsilon(k)
        except PrvGridTooLarge:
            return True
        self._log_eps[k] = math.log(max(eps, _TINY))
        return eps > self.target

    def propose(self, lo: int, hi: int) -> int:
        """Predicted largest k whose σ_k is still too small (the boundary just below σ*)."""
        sigma_star = self._predict(lo, hi)
        if not (math.isfinite(sigma_star) and sigma_star > 0):
            return (lo + hi) // 2
        return math.ceil(sigma_star / self.tolerance - 1e-9) - 1

    def _predict(self, lo: int, hi: int) -> float:
        known = self._log_eps
        if not known:
            return gdp_sigma_guess(sample_rate=self.sample_rate, steps=self.steps,
                                   delta=self.delta, target=self.target)
        ends = [k for k in (lo, hi) if k in known]
        if len(ends) < 2:  # the two exact answers closest to the target
            ends = sorted(known, key=lambda k: abs(known[k] - math.log(self.target)))[:2]
        if len(ends) == 1:
            k = ends[0]
            return self.sigma(k) * math.exp(known[k] - math.log(self.target))  # ε ∝ 1/σ
        (ka, kb) = ends
        slope = (known[kb] - known[ka]) / (math.log(self.sigma(kb)) - math.log(self.sigma(ka)))
        if not slope < 0:
            return math.nan
        return self.sigma(ka) * math.exp((math.log(self.target) - known[ka]) / slope)


def gdp_sigma_guess(*, sample_rate: float, steps: int, delta: float, target: float) -> float:
    """σ at which Gaussian DP (Poisson CLT) puts ε at the target: a seed, never an answer."""
    try:
        log_mu = optimize.brentq(
            lambda lm: gdp_analysis.delta_eps_mu(eps=target, mu=math.exp(lm)) - delta, -30.0, 6.0)
    except (ValueError, RuntimeError, OverflowError):
        return 1.0
    ratio = math.exp(log_mu) / (sample_rate * math.sqrt(steps))
    return 1.0 / math.sqrt(math.log1p(ratio * ratio))
