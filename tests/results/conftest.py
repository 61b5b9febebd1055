"""Shared fixtures for the results tests: valid trial rows and a fresh store."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from dpsweep.results.store import ResultStore

RowFactory = Callable[..., dict[str, Any]]


def _row(**overrides: Any) -> dict[str, Any]:
    """A valid completed private row; ``private=False`` makes it non-private."""
    private = overrides.pop("private", True)
    row: dict[str, Any] = {
        "sweep_id": "sweep-a", "trial_id": "t0001", "dataset": "mimic-cxr",
        "dataset_format": "mimic-cxr", "model": "minilm", "status": "completed",
        "epsilon_target": 1.0, "epsilon": 0.95, "delta": 1e-5, "sigma": 1.2, "clip": 1.0,
        "sample_rate": 0.01, "steps": 500, "accountant": "prv", "privacy_unit": "record", "noise": "secure",
        "rank": 8, "lora_alpha": 16.0,
        "lora_dropout": 0.05, "lr": 1e-3, "batch_size": 64, "epochs": 5.0, "max_length": 128,
        "seed": 0, "weighted_f1": 0.8, "macro_f1": 0.6, "micro_f1": 0.82, "auroc_macro": 0.9,
        "per_label_f1": {"Edema": 0.7, "Pneumonia": 0.5}, "n_train": 1000, "n_val": 200,
        "train_seconds": 10.0, "wall_seconds": 12.5,
        "started_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "git_commit": "abc123",
        "config_json": {"model": {"name": "minilm"}, "lora": {"rank": 8}, "privacy": {"epsilon": 1.0}},
    }
    if not private:
        row.update(epsilon_target=math.inf, epsilon=math.inf, sigma=0.0, noise="none",
                   config_json={"model": {"name": "minilm"}, "privacy": {"epsilon": math.inf}})
    row.update(overrides)
    return row


@pytest.fixture
def make_row() -> RowFactory:
    """Factory of valid rows: ``make_row(trial_id="t2", weighted_f1=0.7, private=False)``."""
    return _row


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    """An empty store in a temporary folder (created on first write)."""
    return ResultStore(tmp_path / "store")
