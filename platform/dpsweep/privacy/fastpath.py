"""Opacus' RDP and PRV ε for one (σ, q, T) history, recomputed with shared work cached.

Why: a calibration search asks the accountant for ε at a dozen step counts (or σ values).
``PRVAccountant.get_epsilon`` spends most of a call below ~1000 steps re-deriving the
per-step RDP curve of (σ, q) (151 orders, 10-100 ms) only to size its discretisation
grid. RDP of T steps is exactly T times that curve, so this module caches the curve per
(σ, q) and then runs the very same Opacus building blocks in the very same order:
the result is bit-for-bit the accountant's own number (tests/privacy check ``==`` against
``PRVAccountant`` / ``RDPAccountant``), at a fraction of the cost.

It mirrors opacus 1.6 (``accountants/prv.py``, ``rdp.py``, ``analysis/prv/domain.py``);
calibration still confirms its final answer with the real accountant, so a future Opacus
that computes differently costs time, never a wrong ε.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.analysis.prv import (
    Domain,
    PoissonSubsampledGaussianPRV,
    TruncatedPrivacyRandomVariable,
    compose_heterogeneous,
    discretize,
)

ALPHAS: tuple[float, ...] = tuple(RDPAccountant.DEFAULT_ALPHAS)
PRV_EPS_ERROR = 0.01  # PRVAccountant.get_epsilon's default eps_error
PRV_MAX_GRID_POINTS = 30_000_000  # ~240 MB per array; beyond this PRV needs GBs and minutes


@functools.lru_cache(maxsize=1024)
def rdp_per_step(sigma: float, sample_rate: float) -> np.ndarray:
    """RDP of one step at every default order (read-only: it is shared by the cache)."""
    curve = rdp_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=sigma, steps=1, orders=list(ALPHAS)
    )
    curve.flags.writeable = False
    return curve


def rdp_epsilon(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """``RDPAccountant`` ε for ``steps`` steps; identical to ``get_epsilon(delta)``."""
    # RDPAccountant.get_privacy_spent sums a one-entry list: 0 + curve * steps.
    rdp = sum([rdp_per_step(sigma, sample_rate) * steps])
    eps, _ = rdp_analysis.get_privacy_spent(orders=list(ALPHAS), rdp=rdp, delta=delta)
    return float(eps)


def quiet_rdp_epsilon(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """``rdp_epsilon`` without Opacus' "optimal order is the smallest/largest alpha" warning.

    For internal uses (sizing PRV's grid, as inside Opacus; steering a search) where that
    remark about RDP's tightness is noise to the user.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order")
        return rdp_epsilon(sigma, sample_rate, steps, delta)


def prv_domain(sigma: float, sample_rate: float, steps: int, delta: float) -> Domain:
    """The grid ``PRVAccountant`` discretises on (``_get_domain``): its size sets the cost."""
    delta_error = delta / 1000
    # compute_safe_domain_size, for a single-entry history
    l_max = quiet_rdp_epsilon(sigma, sample_rate, steps, delta_error / 4)
    l_max = max(l_max, quiet_rdp_epsilon(sigma, sample_rate, 1, delta_error / (8 * steps)))
    half_width = max(l_max, PRV_EPS_ERROR) + 3
    mesh_size = PRV_EPS_ERROR / np.sqrt(steps * np.log(12 / delta_error) / 2)
    return Domain.create_aligned(-half_width, half_width, mesh_size)


def prv_epsilon(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """``PRVAccountant`` ε (its upper bound, default errors); identical to ``get_epsilon(delta)``."""
    delta_error = delta / 1000
    domain = prv_domain(sigma, sample_rate, steps, delta)
    prv = PoissonSubsampledGaussianPRV(sample_rate, sigma)
    truncated = TruncatedPrivacyRandomVariable(prv, domain.t_min, domain.t_max)
    discrete = discretize(truncated, domain)
    composed = compose_heterogeneous(dprvs=[discrete], num_self_compositions=[steps])
    _, _, eps_upper = composed.compute_epsilon(delta, delta_error, PRV_EPS_ERROR)
    return float(eps_upper)
