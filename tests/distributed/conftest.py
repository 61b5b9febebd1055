"""Shared pieces of the distributed tests: a tiny DP trial config, a private Ray instance."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from dpsweep.train import TrialConfig


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def dp_config(tiny_model_dir, synth_mimic) -> TrialConfig:
    """A DP trial of 9 steps (q = 1/9, σ = 1) on the tiny model and synthetic MIMIC-CXR."""
    return TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                       max_length=48, batch_size=32, physical_batch_size=16, max_epochs=1.0, rank=2,
                       lr=5e-3, seed=0, accountant="rdp", epsilon=8.0, sigma=1.0,
                       noise="reproducible")  # resume tests compare weights bit for bit


@pytest.fixture(scope="module")
def ray_temp_dir():
    """A short, private Ray temp dir: Unix socket paths are short, and a stale
    `ray_current_cluster` file elsewhere cannot stop this instance from starting."""
    folder = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def local_ray(ray_temp_dir):
    """A 2-CPU Ray instance for the tests of one module."""
    import ray

    # address="local": always a new instance, even when RAY_ADDRESS names a running cluster
    ray.init(address="local", num_cpus=2, _temp_dir=ray_temp_dir, include_dashboard=False)
    yield
    ray.shutdown()
