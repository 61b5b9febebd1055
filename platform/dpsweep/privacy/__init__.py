"""Privacy accounting for dpsweep: ε of a DP-SGD run, calibration to a budget, the ledger.

Only numpy, scipy, Opacus' accountants and dp-accounting are imported here (no torch
training code, no Ray), so sweeps can plan budgets and the results store can re-check ε cheaply.

- ``compute_epsilon``: ε the Opacus accountant (PRV, RDP; GDP for reporting) reports.
- ``max_steps_for_budget`` / ``sigma_for_budget``: fit steps or σ to an ε target.
- ``PrivacyLedger``: σ, q, steps, δ, C and accountant stored with every ε.
- ``epsilon_pld``: the same ε from dp-accounting's PLD accountant (an independent check).
- ``group_epsilon``: ε of a person with k records (record-level rows: the patient with most reports).
- ``release_epsilon`` / ``composed_epsilon``: ε of a sweep, best-of-random-K (Papernot &
  Steinke) or every trial composed (adaptive searchers).
"""

from __future__ import annotations

from dpsweep.privacy.accountants import Accountant, compute_epsilon, parse_accountant
from dpsweep.privacy.calibration import StepCalibration, max_steps_for_budget, sigma_for_budget
from dpsweep.privacy.group import group_epsilon
from dpsweep.privacy.ledger import PrivacyLedger, validate_privacy_args
from dpsweep.privacy.pld import epsilon_pld
from dpsweep.privacy.tuning import (
    TrialPrivacy,
    TuningDistribution,
    calibrate_trial_steps_for_release,
    composed_epsilon,
    draw_trial_count,
    release_epsilon,
)

__all__ = [
    "Accountant",
    "PrivacyLedger",
    "StepCalibration",
    "TrialPrivacy",
    "TuningDistribution",
    "calibrate_trial_steps_for_release",
    "composed_epsilon",
    "compute_epsilon",
    "draw_trial_count",
    "epsilon_pld",
    "group_epsilon",
    "max_steps_for_budget",
    "parse_accountant",
    "release_epsilon",
    "sigma_for_budget",
    "validate_privacy_args",
]
