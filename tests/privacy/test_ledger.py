"""The ledger round-trips, recomputes its ε, and validate_privacy_args explains every refusal."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dpsweep.errors import ConfigError
from dpsweep.privacy import Accountant, PrivacyLedger, compute_epsilon, validate_privacy_args


def private_ledger(accountant: str = "prv") -> PrivacyLedger:
    eps = compute_epsilon(sigma=1.1, sample_rate=0.05, steps=300, delta=1e-5, accountant=accountant)
    return PrivacyLedger(epsilon_target=3.0, epsilon=eps, delta=1e-5, sigma=1.1, clip=1.0,
                         sample_rate=0.05, steps=300, accountant=accountant)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_round_trip_and_recompute(accountant):
    ledger = private_ledger(accountant)
    d = ledger.to_dict()
    assert list(d) == ["epsilon_target", "epsilon", "delta", "sigma", "clip", "sample_rate",
                       "steps", "accountant", "privacy_unit", "noise", "epsilon_accountant", "epsilon_pld",
                       "epsilon_patient", "patient_records"]
    assert PrivacyLedger.from_dict(d) == ledger
    assert ledger.recompute_epsilon() == ledger.epsilon


def test_round_trip_through_json_and_numpy_types():
    ledger = private_ledger()
    row = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in ledger.to_dict().items()}
    row["steps"] = np.int64(row["steps"])
    row["weighted_f1"] = 0.8  # a whole results row: other keys are ignored
    assert PrivacyLedger.from_dict(row) == ledger
    assert PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict()))) == ledger


def test_non_private_ledger():
    ledger = PrivacyLedger.non_private(delta=1e-5, sample_rate=0.1, steps=50)
    assert ledger.epsilon == math.inf and ledger.epsilon_target == math.inf
    assert ledger.sigma == 0.0 and ledger.clip == math.inf and ledger.accountant == "none"
    assert not ledger.private and ledger.recompute_epsilon() == math.inf
    restored = PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored == ledger


def test_accountant_enum_is_stored_as_plain_string():
    ledger = PrivacyLedger(epsilon_target=1.0, epsilon=0.0, delta=1e-5, sigma=1.0, clip=1.0,
                           sample_rate=0.1, steps=0, accountant=Accountant.RDP)
    assert ledger.accountant == "rdp" and type(ledger.to_dict()["accountant"]) is str
    assert ledger.recompute_epsilon() == 0.0


def test_a_tampered_epsilon_is_caught_by_recompute():
    ledger = private_ledger()
    tampered = PrivacyLedger.from_dict({**ledger.to_dict(), "epsilon": ledger.epsilon / 2})
    assert tampered.recompute_epsilon() != tampered.epsilon


@pytest.mark.parametrize("change", [{"accountant": "pld"}, {"steps": -1}, {"steps": 2.5}])
def test_bad_ledger_values(change):
    with pytest.raises(ConfigError) as err:
        PrivacyLedger.from_dict({**private_ledger().to_dict(), **change})
    assert "\n" not in str(err.value)


def test_missing_keys_are_named():
    d = private_ledger().to_dict()
    del d["sigma"], d["delta"]
    with pytest.raises(ConfigError, match="missing delta, sigma"):
        PrivacyLedger.from_dict(d)


GOOD = dict(epsilon_target=8.0, delta=1e-5, n_train=3000, sigma=1.0, clip=1.0)


def test_good_args_pass():
    validate_privacy_args(**GOOD)
    validate_privacy_args(**{**GOOD, "sigma": None})
    validate_privacy_args(**{**GOOD, "epsilon_target": math.inf, "sigma": None, "clip": math.inf})
    validate_privacy_args(**{**GOOD, "epsilon_target": math.inf, "sigma": 0.0})


@pytest.mark.parametrize("field, value, words", [
    ("epsilon_target", 0.0, "epsilon must be > 0"),
    ("epsilon_target", -1.0, "epsilon must be > 0"),
    ("epsilon_target", math.nan, "epsilon must be > 0"),
    ("delta", 0.0, "1/n_train"),
    ("delta", 1e-3, "1/n_train = 0.000333"),
    ("delta", 1 / 3000, "1/n_train"),
    ("delta", math.nan, "1/n_train"),
    ("sigma", 0.0, "sigma must be"),
    ("sigma", -0.5, "sigma must be"),
    ("clip", 0.0, "clip"),
    ("clip", -1.0, "clip"),
    ("clip", math.nan, "clip"),
    ("clip", math.inf, "finite for a private run"),
    ("n_train", 0, "n_train"),
])
def test_bad_args_raise_one_line_with_rule_value_and_fix(field, value, words):
    with pytest.raises(ConfigError) as err:
        validate_privacy_args(**{**GOOD, field: value})
    message = str(err.value)
    assert words in message and repr(value) in message and "\n" not in message
    assert any(fix in message for fix in ("e.g.", "pass", "use"))


def test_final_ledger_stores_the_larger_of_opacus_and_pld_and_the_patient_bound():
    from dpsweep.privacy.ledger import dp_ledger
    from dpsweep.privacy.pld import epsilon_pld

    kw = dict(epsilon_target=8.0, delta=1e-5, sigma=1.16, clip=1.0, sample_rate=1 / 11, steps=264, accountant="prv")
    ledger = dp_ledger(**kw, patient_records=2, cross_check=True)
    pld = epsilon_pld(sigma=1.16, sample_rate=1 / 11, steps=264, delta=1e-5)
    assert ledger.epsilon_pld == pld and ledger.epsilon == max(ledger.epsilon_accountant, pld)
    assert ledger.epsilon_patient == pytest.approx(18.8, abs=0.15)  # a patient with 2 reports
    patient = dp_ledger(**kw, privacy_unit="patient", cross_check=True)
    assert patient.epsilon_patient == patient.epsilon and patient.patient_records is None
    assert "one patient" in patient.covers() and "excludes hyperparameter tuning" in patient.covers()
    assert PrivacyLedger.from_dict(ledger.to_dict()) == ledger
