"""Privacy accounting for dpsweep: ε of a DP-SGD run, calibration to a budget, the ledger.

Only numpy, scipy and Opacus' accountants are imported here (no torch training code, no
Ray), so sweeps can plan budgets and the results store can re-check ε cheaply.

- ``compute_epsilon``: ε the Opacus accountant (PRV, RDP; GDP for reporting) reports.
- ``max_steps_for_budget`` / ``sigma_for_budget``: fit steps or σ to an ε target.
- ``PrivacyLedger``: σ, q, steps, δ, C and accountant stored with every ε.
"""

from __future__ import annotations

from dpsweep.privacy.accountants import Accountant, compute_epsilon, parse_accountant
from dpsweep.privacy.calibration import StepCalibration, max_steps_for_budget, sigma_for_budget
from dpsweep.privacy.ledger import PrivacyLedger, validate_privacy_args

__all__ = [
    "Accountant",
    "PrivacyLedger",
    "StepCalibration",
    "compute_epsilon",
    "max_steps_for_budget",
    "parse_accountant",
    "sigma_for_budget",
    "validate_privacy_args",
]
