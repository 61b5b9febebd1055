"""The privacy ledger of one trial, and the checks a trial's privacy arguments must pass.

A ledger stores every input of the accountant (σ, q, steps, δ, accountant) next to the
ε it produced, plus the clipping norm C that makes σ meaningful, so any ε in the
results store can be recomputed and checked later (dp_accounting's DpEvent idea).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

from dpsweep.errors import ConfigError
from dpsweep.privacy.accountants import Accountant, compute_epsilon
from dpsweep.privacy.checks import check_sigma

NON_PRIVATE = "none"
_ACCOUNTANT_NAMES = tuple(a.value for a in Accountant) + (NON_PRIVATE,)


@dataclass(frozen=True)
class PrivacyLedger:
    """What a trial spent and every number needed to recompute it."""

    epsilon_target: float  # math.inf for non-private
    epsilon: float  # spent, from the accountant for the steps actually taken; math.inf when non-private
    delta: float
    sigma: float  # 0.0 when non-private
    clip: float  # max per-sample grad norm C; math.inf when non-private (no clipping)
    sample_rate: float
    steps: int
    accountant: str  # "prv" | "rdp" (| "gdp" for reporting) | "none" when non-private
    # What ε protects: one report ("record") or one patient, and how the noise was drawn.
    privacy_unit: str = "record"
    noise: str = "secure"  # "reproducible": replayable from the stored seed, so NOT private
    # Cross-checks (final ledgers only): the Opacus accountant's ε, dp-accounting's PLD ε
    # (epsilon is the larger), and the ε of one patient: epsilon itself at patient level,
    # else the group bound for the patient with the most reports (patient_records of them).
    epsilon_accountant: float | None = None
    epsilon_pld: float | None = None
    epsilon_patient: float | None = None
    patient_records: int | None = None

    def __post_init__(self) -> None:
        name = self.accountant.value if isinstance(self.accountant, Accountant) else self.accountant
        if not isinstance(name, str) or name.strip().lower() not in _ACCOUNTANT_NAMES:
            raise ConfigError(f"ledger accountant must be one of {', '.join(_ACCOUNTANT_NAMES)}, "
                              f"got {self.accountant!r}; use 'prv' or 'rdp', or 'none' when non-private")
        object.__setattr__(self, "accountant", name.strip().lower())
        if isinstance(self.steps, bool) or not isinstance(self.steps, Integral) or self.steps < 0:
            raise ConfigError(f"ledger steps must be an integer >= 0, got {self.steps!r}; "
                              "record the optimizer steps actually taken")
        object.__setattr__(self, "steps", int(self.steps))

    @property
    def private(self) -> bool:
        """False for the non-private baseline (no noise, no clipping, ε = inf)."""
        return self.accountant != NON_PRIVATE

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (floats, int, str); math.inf stays math.inf."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacyLedger:
        """Inverse of ``to_dict``; other keys are ignored so a whole results row can be passed."""
        names = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [n for n in names if n not in d]
        if missing:
            raise ConfigError(f"privacy ledger needs keys {', '.join(names)}; missing "
                              f"{', '.join(missing)}; pass a dict made by PrivacyLedger.to_dict()")
        values = {n: d[n] for n in names}
        values.update({f.name: d[f.name] for f in fields(cls) if f.default is not MISSING and d.get(f.name) is not None})
        try:
            for n in ("epsilon_target", "epsilon", "delta", "sigma", "clip", "sample_rate"):
                values[n] = float(values[n])
            steps = values["steps"]
            values["steps"] = int(steps) if float(steps).is_integer() else steps
            for n in ("epsilon_accountant", "epsilon_pld", "epsilon_patient"):
                if n in values:
                    values[n] = float(values[n])
            if "patient_records" in values:
                values["patient_records"] = int(values["patient_records"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"privacy ledger values must be numbers, got {values!r} ({exc}); "
                              "pass a dict made by PrivacyLedger.to_dict()") from None
        return cls(**values)

    def recompute_epsilon(self) -> float:
        """ε re-derived from (σ, q, steps, δ, accountant): checks any stored ε later."""
        if not self.private:
            return math.inf
        return compute_epsilon(sigma=self.sigma, sample_rate=self.sample_rate, steps=self.steps,
                               delta=self.delta, accountant=self.accountant)

    @classmethod
    def non_private(cls, *, delta: float, sample_rate: float, steps: int, privacy_unit: str = "record"
                    ) -> PrivacyLedger:
        """The ledger of a run without DP: ε = inf, σ = 0, no clipping (C = inf)."""
        return cls(epsilon_target=math.inf, epsilon=math.inf, delta=float(delta), sigma=0.0,
                   clip=math.inf, sample_rate=float(sample_rate), steps=steps, accountant=NON_PRIVATE,
                   privacy_unit=privacy_unit, noise="none", epsilon_patient=math.inf)

    def covers(self) -> str:
        """One line: what this ε protects and what it leaves out."""
        if not self.private:
            return "non-private: no differential privacy"
        unit = "one patient (all their reports)" if self.privacy_unit == "patient" else "one report"
        note = "; noise REPRODUCIBLE from the stored seed: not private" if self.noise == "reproducible" else ""
        return (f"per trial: protects {unit} of the training split; excludes hyperparameter tuning, "
                f"validation and test (used for selection and thresholds){note}")


GROUP_BOUND_MAX_REPORTS = 16  # above this the mixture-of-Gaussians bound is slow and far past any budget


def dp_ledger(*, epsilon_target: float, delta: float, sigma: float, clip: float, sample_rate: float, steps: int,
              accountant: str, privacy_unit: str = "record", noise: str = "secure",
              patient_records: int | None = None, cross_check: bool = False) -> PrivacyLedger:
    """The ledger of a DP run that took `steps` steps at (σ, q).

    With `cross_check` (final ledgers) it adds dp-accounting's PLD ε, stores the larger of
    the two as `epsilon`, and the ε of one patient: at patient level that is `epsilon`; at
    record level the group bound for a patient with `patient_records` reports (the most any
    patient has in the training split), None when unknown or above GROUP_BOUND_MAX_REPORTS.
    """
    eps_acc = compute_epsilon(sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta,
                              accountant=accountant) if steps else 0.0
    extra: dict[str, Any] = {}
    eps = eps_acc
    if cross_check:
        from dpsweep.privacy.pld import epsilon_pld

        eps_pld = epsilon_pld(sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta) if steps else 0.0
        eps = max(eps_acc, eps_pld)
        extra = dict(epsilon_accountant=eps_acc, epsilon_pld=eps_pld,
                     epsilon_patient=_patient_epsilon(eps, sigma=sigma, sample_rate=sample_rate, steps=steps,
                                                      delta=delta, privacy_unit=privacy_unit,
                                                      patient_records=patient_records),
                     patient_records=patient_records if privacy_unit == "record" else None)
    return PrivacyLedger(epsilon_target=epsilon_target, epsilon=eps, delta=delta, sigma=sigma, clip=clip,
                         sample_rate=sample_rate, steps=steps, accountant=accountant, privacy_unit=privacy_unit,
                         noise=noise, **extra)


def _patient_epsilon(eps: float, *, sigma: float, sample_rate: float, steps: int, delta: float, privacy_unit: str,
                     patient_records: int | None) -> float | None:
    if privacy_unit == "patient" or patient_records == 1:
        return eps
    if patient_records is None or patient_records > GROUP_BOUND_MAX_REPORTS or not steps:
        return None if steps else 0.0
    from dpsweep.privacy.group import group_epsilon

    return max(eps, group_epsilon(sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta,
                                  group_size=patient_records))


def validate_privacy_args(
    *, epsilon_target: float, delta: float, n_train: int, sigma: float | None, clip: float
) -> None:
    """Raise ConfigError (one line: rule, value, fix) for privacy arguments no trial should run with.

    ε = inf means non-private: σ may then be None or 0 and C may be inf (no clipping).
    A private run needs a finite C (clipping bounds the sensitivity σ is scaled to) and,
    when given, σ > 0 (None means "calibrate σ"). δ must lie in (0, 1/n_train).
    """
    if not (isinstance(epsilon_target, Real) and epsilon_target > 0):
        raise ConfigError(f"epsilon must be > 0 (inf for non-private), got {epsilon_target!r}; "
                          "pass e.g. epsilon=8, or inf for a non-private baseline")
    private = not math.isinf(epsilon_target)
    if isinstance(n_train, bool) or not isinstance(n_train, Integral) or n_train < 1:
        raise ConfigError(f"n_train must be an integer >= 1, got {n_train!r}; "
                          "pass the number of training examples")
    if not (isinstance(delta, Real) and 0 < delta < 1 / n_train):
        raise ConfigError(f"delta must satisfy 0 < delta < 1/n_train = {1 / n_train:.3g} "
                          f"(n_train={n_train}), got {delta!r}; use e.g. delta={_suggest_delta(n_train):g}")
    if sigma is not None and (private or sigma != 0):
        check_sigma(sigma)
    if not (isinstance(clip, Real) and clip > 0):
        raise ConfigError(f"clip (max per-sample gradient norm C) must be > 0, got {clip!r}; "
                          "pass e.g. clip=1.0")
    if private and math.isinf(clip):
        raise ConfigError(f"clip must be finite for a private run (epsilon={epsilon_target:g}), got {clip!r}; "
                          "DP-SGD's guarantee needs clipping: pass e.g. clip=1.0")


def _suggest_delta(n_train: int) -> float:
    """A round δ well below 1/n_train (at most 1e-5)."""
    return min(1e-5, 10.0 ** math.floor(math.log10(0.1 / n_train)))
