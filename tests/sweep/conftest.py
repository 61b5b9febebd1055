"""A tiny search space over the tiny synthetic corpus and the tiny BERT."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def tiny_space(data: Path, model_dir: Path, *, store: Path, **changes) -> dict:
    space = {
        "name": "tiny",
        "dataset": {"name": "tiny-mimic", "format": "mimic-cxr", "path": str(data), "max_length": 32},
        "model": {"path": str(model_dir), "lora_layers": 1},
        "privacy": {"epsilons": [3, 8, "inf"], "delta": 1e-5},
        "search": {"rank": {"dist": "choice", "values": [2, 4]},
                   "lr": {"dist": "loguniform", "low": 1e-3, "high": 1e-2},
                   "clip": {"dist": "loguniform", "low": 0.5, "high": 2.0},
                   "sigma": {"dist": "uniform", "low": 0.5, "high": 3.0},
                   "batch_size": 64, "max_epochs": 2},
        "training": {"physical_batch_size": 64, "head_lr": 0.1},
        "trials_per_target": 2,
        "sampler": {"name": "tpe", "seed": 0},
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "max_concurrent_trials": 2},
        "store": str(store),
    }
    for key, value in changes.items():
        space[key] = value
    return space


@pytest.fixture
def write_space(tmp_path, synth_mimic, tiny_model_dir):
    """write_space(**section_overrides) -> path of a YAML search space in tmp_path."""

    def write(name: str = "space.yaml", **changes) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_space(synth_mimic, tiny_model_dir, store=tmp_path / "store",
                                                  **changes), sort_keys=False))
        return path

    return write
