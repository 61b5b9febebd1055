"""What run_trial_on_workers settles before any Ray worker starts (no Ray needed)."""

from __future__ import annotations

import pytest

from dpsweep.distributed import run_on_workers, run_trial_on_workers
from dpsweep.distributed.state import CONFIG_FILE
from dpsweep.errors import ConfigError
from tests.distributed.conftest import quiet


def test_infeasible_budget_starts_no_workers(dp_config, tmp_path):
    result = run_trial_on_workers(dp_config.override(epsilon=0.05, sigma=0.3), num_workers=2,
                                  storage_path=str(tmp_path), name="never", log=quiet)
    assert result.status == "infeasible" and result.ledger.steps == 0
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("bad", [dict(num_workers=0), dict(cpus_per_worker=0), dict(gpus_per_worker=1),
                                 dict(max_failures=-2), dict(checkpoint_every_steps=0)])
def test_bad_worker_arguments_are_refused_by_name(dp_config, tmp_path, bad):
    args = dict(num_workers=2, storage_path=str(tmp_path), name="bad", log=quiet) | bad
    with pytest.raises(ConfigError, match=next(iter(bad))):
        run_on_workers(dp_config, **args)


def test_run_name_holding_another_configs_checkpoints_is_refused(dp_config, tmp_path):
    checkpoint = tmp_path / "taken" / "checkpoint_2026-01-01_00-00-00.000000"
    checkpoint.mkdir(parents=True)
    (checkpoint / CONFIG_FILE).write_text(dp_config.override(seed=1).to_json())
    with pytest.raises(ConfigError, match="different trial config"):
        run_on_workers(dp_config, num_workers=2, storage_path=str(tmp_path), name="taken", log=quiet)
