"""Model-guided search for the boundary of a monotone yes/no test over integers.

Calibration asks "largest T with ε(T) <= target" and "smallest σ on a grid with
ε(σ) <= target". Each answer costs accountant calls, so a cheap model (RDP's shape for
T, a log-log secant for σ) proposes where the boundary lies and the exact test only
confirms. Safety never rests on the model: the bracket [lo, hi) only moves on exact
answers, and after ``model_tries`` proposals the search falls back to bisection
(geometric over wide ranges), so the worst case stays logarithmic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dpsweep.errors import PrivacyGuardError


def find_boundary(
    is_low: Callable[[int], bool],
    *,
    lo: int,
    hi: int,
    propose: Callable[[int, int], int] | None = None,
    model_tries: int = 8,
) -> int:
    """Largest i in [lo, hi) with ``is_low(i)``, given that ``lo`` is low and ``hi`` is not.

    ``lo`` and ``hi`` are taken on trust (they may be sentinels never evaluated); every
    other index returned or used to move the bracket was evaluated. The answer i satisfies
    ``is_low(i)`` and ``not is_low(i + 1)`` (or i + 1 == hi), even when ``is_low`` is not
    perfectly monotone. ``propose(lo, hi)`` guesses the boundary; guesses outside
    (lo, hi) are clamped into it, so a guess equal to ``lo`` probes ``lo + 1``.
    """
    if not lo < hi:
        raise PrivacyGuardError(f"a step search needs lo < hi, got lo={lo}, hi={hi}")
    tries = 0
    while hi - lo > 1:
        if propose is not None and tries < model_tries:
            candidate = propose(lo, hi)
            tries += 1
        else:
            candidate = _midpoint(lo, hi)
        candidate = min(max(candidate, lo + 1), hi - 1)
        if is_low(candidate):
            lo = candidate
        else:
            hi = candidate
    return lo


def _midpoint(lo: int, hi: int) -> int:
    """Bisection point: geometric across wide ranges (σ from 0.4 to 10,000), else arithmetic."""
    if lo > 0 and hi > 4 * lo:
        return round(math.sqrt(lo * hi))
    return (lo + hi) // 2
