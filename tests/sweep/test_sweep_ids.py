"""Sweep ids: default names, refusal to reuse one, and --resume finding the latest."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsweep.errors import ConfigError
from dpsweep.results import ResultStore
from dpsweep.results.validate import check_id
from dpsweep.settings import EPSILON_MAX
from dpsweep.sweep.runner import default_sweep_id, epsilon_tag, resolve_sweep_id, trial_prefix
from dpsweep.sweep.spec import spec_from_mapping
from tests.sweep.conftest import tiny_space


def _row(sweep_id: str, minutes: int) -> dict:
    return {"sweep_id": sweep_id, "trial_id": "t1", "dataset": "tiny-mimic", "dataset_format": "mimic-cxr",
            "model": "m", "status": "failed", "epsilon_target": 8.0, "config_json": "{}",
            "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)}


def test_resume_finds_the_latest_sweep_of_the_file(tmp_path):
    spec = spec_from_mapping(tiny_space(tmp_path, tmp_path, store=tmp_path / "s"), source="s.yaml")
    store = ResultStore(tmp_path / "s")
    # "tiny-2-..." is another file's sweep whose name starts the same, and it is the latest
    for sweep_id, minutes in (("tiny-20260101-000000", 0), ("tiny-20260101-010000", 60), ("other-x", 120),
                              ("tiny-2-20260101-030000", 180), ("tiny-x", 240)):
        store.append(_row(sweep_id, minutes))
    assert resolve_sweep_id(spec, store, dataset="tiny-mimic", name=None, resume=True) == "tiny-20260101-010000"
    assert resolve_sweep_id(spec, store, dataset="tiny-mimic", name="other-x", resume=True) == "other-x"
    with pytest.raises(ConfigError, match="pass --resume"):
        resolve_sweep_id(spec, store, dataset="tiny-mimic", name="other-x", resume=False)
    assert default_sweep_id(spec).startswith("tiny-")


def test_resume_without_any_sweep_says_what_to_do(tmp_path):
    spec = spec_from_mapping(tiny_space(tmp_path, tmp_path, store=tmp_path / "s"), source="s.yaml")
    with pytest.raises(ConfigError, match="run it without --resume first"):
        resolve_sweep_id(spec, ResultStore(tmp_path / "s"), dataset="tiny-mimic", name=None, resume=True)


# ---- trial ids: every ε a search space accepts gives an id the store accepts ---------------

@settings(max_examples=300, deadline=None)
@given(eps=st.floats(min_value=0, max_value=EPSILON_MAX, exclude_min=True) | st.just(math.inf))
def test_every_accepted_epsilon_gives_a_valid_exact_trial_id(eps):
    spec = spec_from_mapping({"name": "t", "dataset": {"format": "mimic-cxr", "path": "d"},
                              "privacy": {"epsilons": [eps]}, "search": {"lr": 0.01}}, source="s.yaml")
    (accepted,) = spec.epsilons
    tag = epsilon_tag(accepted)
    for tune_trial in ("2f1ef_00002", "a1b2c3d4"):  # Tune's two trial-id forms
        check_id(f"{trial_prefix(accepted, 3)}-{tune_trial}", what="trial_id")
    assert float(tag) == accepted  # exact: two targets never share a prefix


@pytest.mark.parametrize("eps,tag", [(8.0, "8"), (0.1, "0.1"), (math.inf, "inf"), (1e12, "1e12"),
                                     (1e-5, "1e-05"), (1.0000001, "1.0000001"), (1e-300, "1e-300"),
                                     (1.7976931348623157e308, "1.7976931348623157e308")])
def test_epsilon_tags_stay_short_where_exact(eps, tag):
    """Beyond the accepted range too (1e12 gave the id eps1e+12, which the store refuses)."""
    assert epsilon_tag(eps) == tag
    check_id(f"eps{tag}-0-2f1ef_00002", what="trial_id")


def test_epsilon_targets_above_the_maximum_are_refused():
    with pytest.raises(ConfigError, match=r"privacy.epsilons: every finite target must be <= 100, got 1e\+12"):
        spec_from_mapping({"name": "t", "dataset": {"format": "mimic-cxr", "path": "d"},
                           "privacy": {"epsilons": [8, 1e12]}, "search": {"lr": 0.01}}, source="s.yaml")
