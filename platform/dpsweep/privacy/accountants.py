"""Which accountant, and the ε it reports for σ, q, T and δ.

``compute_epsilon`` is the one place the rest of dpsweep gets ε from: it asks the real
Opacus accountant (PRV or RDP) for the history ``[(σ, q, T)]`` and memoises the answer,
so a ledger, a progress line and a calibration all agree to the last bit.

GDP is accepted here for reporting and comparison (it is what ``GaussianAccountant``
returns), but calibration refuses it: GDP can under-report ε for small sample rates and
many steps (Gopi et al. 2021), so a budget met under GDP may not be met at all.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from enum import Enum

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import gdp as gdp_analysis

from dpsweep.errors import ConfigError
from dpsweep.privacy import fastpath
from dpsweep.privacy.checks import check_delta, check_sample_rate, check_sigma, check_steps


class PrvGridTooLarge(ConfigError):
    """PRV cannot account for a history: its grid would not fit in memory, or its discretisation
    breaks down (Opacus' "Discrete mean differs" check, seen at σ = 0.01); ε far beyond any budget."""


class Accountant(str, Enum):
    """Privacy accountants dpsweep knows: PRV (tight, default), RDP (looser, fast), GDP (report only)."""

    PRV = "prv"
    RDP = "rdp"
    GDP = "gdp"


# (accountant, sigma, sample_rate, steps, delta) -> epsilon, for already-checked inputs
EpsilonFn = Callable[[Accountant, float, float, int, float], float]


def parse_accountant(value: Accountant | str) -> Accountant:
    """The Accountant named by ``value`` (case-insensitive); ConfigError naming the choices."""
    if isinstance(value, Accountant):
        return value
    if isinstance(value, str):
        try:
            return Accountant(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(a.value for a in Accountant)
    raise ConfigError(f"accountant must be one of {choices}, got {value!r}; use accountant='prv' (the default)")


def compute_epsilon(
    *, sigma: float, sample_rate: float, steps: int, delta: float, accountant: Accountant | str
) -> float:
    """ε that the Opacus accountant reports after ``steps`` DP-SGD steps at (σ, q), for δ.

    Exactly ``PRVAccountant`` / ``RDPAccountant`` ``.get_epsilon(delta)`` with their
    defaults for the history ``[(sigma, sample_rate, steps)]`` (GDP: ``GaussianAccountant``
    with Poisson sampling). ``steps == 0`` gives 0.0. σ = 0 (no noise) is refused:
    callers record ε = inf for non-private runs themselves. PRV histories whose grid
    would exceed ``fastpath.PRV_MAX_GRID_POINTS`` (ε in the hundreds; GBs of memory) raise
    ConfigError pointing to RDP instead of exhausting the machine.
    """
    acc = parse_accountant(accountant)
    check_sigma(sigma)
    check_sample_rate(sample_rate)
    check_delta(delta)
    check_steps(steps)
    if steps == 0:
        return 0.0
    return _opacus_epsilon(acc, float(sigma), float(sample_rate), int(steps), float(delta))


# Opacus' PRV takes log(1 - q): at q = 1 (full-batch DP gradient descent) numpy warns of
# log(0) = -inf, which the comparison that follows handles exactly. Not a fault; not shown.
warnings.filterwarnings("ignore", message="divide by zero encountered in log", category=RuntimeWarning,
                        module=r"opacus\.accountants\.analysis\.prv\.prvs")

@functools.lru_cache(maxsize=4096)
def _opacus_epsilon(acc: Accountant, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """The real accountant's answer (memoised: ε of a history never changes)."""
    if acc is Accountant.GDP:
        # GaussianAccountant.get_epsilon(delta) with poisson=True, minus its constructor warning
        return float(gdp_analysis.compute_eps_poisson(
            steps=steps, noise_multiplier=sigma, sample_rate=sample_rate, delta=delta))
    if acc is Accountant.PRV:
        check_prv_grid(sigma, sample_rate, steps, delta)
        accountant: PRVAccountant | RDPAccountant = PRVAccountant()
    else:
        accountant = RDPAccountant()
    accountant.history = [(sigma, sample_rate, steps)]
    with warnings.catch_warnings():
        if acc is Accountant.PRV:  # its inner RDP only sizes the grid: its order warning is noise
            warnings.filterwarnings("ignore", message="Optimal order")
            return prv_or_refuse(lambda: float(accountant.get_epsilon(delta)), sigma, sample_rate, steps)
        return float(accountant.get_epsilon(delta))


def opacus_epsilon(acc: Accountant, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """The real accountant's ε (memoised), for already-checked inputs; 0.0 for no steps."""
    if steps == 0:
        return 0.0
    return _opacus_epsilon(acc, sigma, sample_rate, steps, delta)


def fast_epsilon(acc: Accountant, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """The same number as ``opacus_epsilon``, cheaper: for searches that probe many T or σ.

    Inputs are assumed valid (calibration checks them once). See ``fastpath``.
    """
    if steps == 0:
        return 0.0
    return _fast_epsilon(acc, sigma, sample_rate, steps, delta)


@functools.lru_cache(maxsize=8192)
def _fast_epsilon(acc: Accountant, sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    if acc is Accountant.PRV:
        check_prv_grid(sigma, sample_rate, steps, delta)
        return prv_or_refuse(lambda: fastpath.prv_epsilon(sigma, sample_rate, steps, delta), sigma, sample_rate,
                             steps)
    if acc is Accountant.RDP:
        return fastpath.rdp_epsilon(sigma, sample_rate, steps, delta)
    return _opacus_epsilon(acc, sigma, sample_rate, steps, delta)


def prv_or_refuse(compute: Callable[[], float], sigma: float, sample_rate: float, steps: int) -> float:
    """``compute()`` (a PRV ε), with Opacus' refusals as one-line ConfigErrors, not crashes.

    At tiny σ (0.01) Opacus' PRV raises RuntimeError("Discrete mean differs significantly
    from continuous mean"): such a history spends far beyond any budget, and calibration
    treats PrvGridTooLarge as over budget. At tiny δ (1e-300) it raises ValueError
    ("Floating point errors will dominate"). Its PRV overflows in `exp` where `np.where`
    discards the result anyway: those RuntimeWarnings (site-packages paths and source lines
    on the user's terminal) are silenced here.
    """
    try:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return compute()
    except ValueError as exc:
        if "Floating point errors" not in str(exc):
            raise
        raise ConfigError("delta is too small for the PRV accountant (floating-point error would dominate "
                          "its epsilon); pass a delta of 1e-10 or more (usual: below 1/n_train, e.g. 1e-5), "
                          "or accountant='rdp'") from None
    except RuntimeError as exc:
        if "Discrete mean" not in str(exc):
            raise
        raise PrvGridTooLarge(
            f"PRV cannot account for sigma={sigma:g}, q={sample_rate:g}, steps={steps} (its discretisation "
            "breaks down at such a small sigma, whose epsilon is far beyond usual budgets); raise sigma, or "
            "use accountant='rdp'"
        ) from None


def check_prv_grid(sigma: float, sample_rate: float, steps: int, delta: float) -> None:
    """Refuse PRV histories whose grid would need GBs of memory (ε far beyond any budget)."""
    size = fastpath.prv_domain(sigma, sample_rate, steps, delta).size
    if size > fastpath.PRV_MAX_GRID_POINTS:
        rdp = fastpath.quiet_rdp_epsilon(sigma, sample_rate, steps, delta)
        raise PrvGridTooLarge(
            f"PRV accounting of sigma={sigma:g}, q={sample_rate:g}, steps={steps} needs a grid of "
            f"{size:,} points (limit {fastpath.PRV_MAX_GRID_POINTS:,}; RDP puts epsilon near "
            f"{rdp:.3g}, far beyond usual budgets); use accountant='rdp' for such histories"
        )

