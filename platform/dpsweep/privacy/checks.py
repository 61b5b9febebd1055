"""Input checks shared by the privacy functions: one-line ConfigError messages.

Every message states the rule, the value received and the fix (STYLE.md, rule 3).
Comparisons are written as ``not (x > 0)`` so that NaN is rejected too.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from dpsweep.errors import ConfigError


def check_sigma(sigma: float) -> None:
    """σ (noise multiplier) must be a finite number > 0; σ = 0 means no DP and is handled by callers."""
    if not (isinstance(sigma, Real) and 0 < sigma < math.inf):
        raise ConfigError(
            f"noise multiplier sigma must be a finite number > 0, got {sigma!r}; "
            "pass e.g. sigma=1.0 (for a non-private run use epsilon = inf and no sigma)"
        )


def check_sample_rate(sample_rate: float) -> None:
    """q must lie in (0, 1]."""
    if not (isinstance(sample_rate, Real) and 0 < sample_rate <= 1):
        raise ConfigError(
            f"sample_rate q must satisfy 0 < q <= 1, got {sample_rate!r}; "
            "use q = expected batch size / n_train"
        )


def check_delta(delta: float) -> None:
    """δ must lie in (0, 1)."""
    if not (isinstance(delta, Real) and 0 < delta < 1):
        raise ConfigError(
            f"delta must satisfy 0 < delta < 1, got {delta!r}; use a delta below 1/n_train, e.g. 1e-5"
        )


def check_steps(steps: int, *, name: str = "steps", minimum: int = 0) -> None:
    """A step count must be an integer >= ``minimum`` (bool is refused)."""
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < minimum:
        raise ConfigError(
            f"{name} must be an integer >= {minimum}, got {steps!r}; pass a whole number of optimizer steps"
        )


def check_target_epsilon(target_epsilon: float) -> None:
    """A calibration target must be finite and > 0 (ε = inf is non-private: nothing to calibrate)."""
    if not (isinstance(target_epsilon, Real) and 0 < target_epsilon < math.inf):
        raise ConfigError(
            f"target_epsilon must be a finite number > 0 to calibrate, got {target_epsilon!r}; "
            "pass e.g. target_epsilon=8 (epsilon = inf is non-private and needs no calibration)"
        )
