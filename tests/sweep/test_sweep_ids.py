"""Sweep ids: default names, refusal to reuse one, and --resume finding the latest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dpsweep.errors import ConfigError
from dpsweep.results import ResultStore
from dpsweep.sweep.runner import default_sweep_id, resolve_sweep_id
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
