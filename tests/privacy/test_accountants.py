"""compute_epsilon is the Opacus accountant's own number; the fast path is bit-identical to it."""

from __future__ import annotations

import math
import warnings

import pytest
from opacus.accountants import GaussianAccountant, PRVAccountant, RDPAccountant

from dpsweep.errors import ConfigError
from dpsweep.privacy import Accountant, compute_epsilon, parse_accountant
from dpsweep.privacy.accountants import fast_epsilon

# (sigma, sample_rate, steps, delta): typical, tiny q, large q, one step, many steps
HISTORIES = [
    (1.0, 256 / 3000, 181, 1e-5),
    (0.7, 0.01, 1200, 1e-6),
    (2.5, 0.2, 40, 1e-5),
    (1.3, 0.003, 1, 1e-5),
    (0.9, 0.02, 3000, 1e-5),
]
OPACUS = {"prv": PRVAccountant, "rdp": RDPAccountant}


def opacus_epsilon(accountant: str, sigma: float, q: float, steps: int, delta: float) -> float:
    """A direct Opacus call, as a training loop's accountant would make it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = OPACUS[accountant]() if accountant in OPACUS else GaussianAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta))


@pytest.mark.parametrize("accountant", ["prv", "rdp", "gdp"])
@pytest.mark.parametrize("history", HISTORIES[:3])
def test_compute_epsilon_equals_opacus(accountant, history):
    sigma, q, steps, delta = history
    got = compute_epsilon(sigma=sigma, sample_rate=q, steps=steps, delta=delta, accountant=accountant)
    assert got == opacus_epsilon(accountant, sigma, q, steps, delta)


def test_steps_recorded_one_by_one_give_the_same_epsilon():
    acc = PRVAccountant()
    for _ in range(25):
        acc.step(noise_multiplier=1.1, sample_rate=0.05)
    assert compute_epsilon(sigma=1.1, sample_rate=0.05, steps=25, delta=1e-5,
                           accountant=Accountant.PRV) == acc.get_epsilon(1e-5)


@pytest.mark.parametrize("accountant", [Accountant.PRV, Accountant.RDP])
@pytest.mark.parametrize("history", HISTORIES)
def test_fast_path_is_bit_identical_to_opacus(accountant, history):
    """The slow reference (real accountant) checks the fast path used by calibration."""
    sigma, q, steps, delta = history
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = fast_epsilon(accountant, sigma, q, steps, delta)
    assert fast == opacus_epsilon(accountant.value, sigma, q, steps, delta)


def test_zero_steps_spend_nothing():
    for acc in Accountant:
        assert compute_epsilon(sigma=1.0, sample_rate=0.1, steps=0, delta=1e-5, accountant=acc) == 0.0


def test_prv_is_tighter_than_rdp_here():
    kwargs = dict(sigma=1.0, sample_rate=0.05, steps=500, delta=1e-5)
    assert compute_epsilon(**kwargs, accountant="prv") < compute_epsilon(**kwargs, accountant="rdp")


@pytest.mark.parametrize("value, expected", [("prv", Accountant.PRV), (" RDP ", Accountant.RDP),
                                             (Accountant.GDP, Accountant.GDP)])
def test_parse_accountant(value, expected):
    assert parse_accountant(value) is expected


@pytest.mark.parametrize("value", ["pld", "", None, 3])
def test_parse_accountant_names_value_and_choices(value):
    with pytest.raises(ConfigError) as err:
        parse_accountant(value)
    message = str(err.value)
    assert repr(value) in message and "prv, rdp, gdp" in message and "\n" not in message


@pytest.mark.parametrize("field, value", [
    ("sigma", 0.0), ("sigma", -1.0), ("sigma", math.nan), ("sigma", math.inf),
    ("sample_rate", 0.0), ("sample_rate", 1.5), ("sample_rate", math.nan),
    ("delta", 0.0), ("delta", 1.0), ("delta", math.nan),
    ("steps", -1), ("steps", 2.5), ("steps", True),
])
def test_bad_inputs_raise_one_line_config_errors(field, value):
    kwargs = dict(sigma=1.0, sample_rate=0.1, steps=10, delta=1e-5, accountant="prv")
    kwargs[field] = value
    with pytest.raises(ConfigError) as err:
        compute_epsilon(**kwargs)
    message = str(err.value)
    assert field.split("_")[0] in message and repr(value) in message and "\n" not in message


def test_huge_prv_grid_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match="accountant='rdp'"):
        compute_epsilon(sigma=0.5, sample_rate=1.0, steps=3000, delta=1e-5, accountant="prv")


@pytest.mark.parametrize("sigma, delta, words", [
    (0.01, 1e-5, "PRV cannot account for sigma=0.01"),  # Opacus: "Discrete mean differs ..." RuntimeError
    (1.0, 1e-300, "delta is too small for the PRV accountant"),  # Opacus: "Floating point errors ..." ValueError
])
def test_prv_refusals_are_one_line_config_errors(sigma, delta, words):
    with pytest.raises(ConfigError, match=words):
        compute_epsilon(sigma=sigma, sample_rate=1 / 3, steps=1, delta=delta, accountant="prv")
    with pytest.raises(ConfigError, match=words):
        fast_epsilon(Accountant.PRV, sigma, 1 / 3, 1, delta)
