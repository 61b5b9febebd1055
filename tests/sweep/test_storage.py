"""The runs-dir rule for clusters of several nodes (sweep/storage.py), without Ray."""

from __future__ import annotations

import pytest

from dpsweep.errors import ConfigError
from dpsweep.sweep.storage import SHARED_ENV, check_runs_dir, declared_shared


def test_one_node_accepts_any_folder_and_several_need_shared_storage():
    check_runs_dir("runs/sweeps", nodes=1, shared=False)
    for uri in ("s3://bucket/runs", "gs://bucket/runs"):
        check_runs_dir(uri, nodes=3, shared=False)
    check_runs_dir("/mnt/nfs/runs", nodes=3, shared=True)
    with pytest.raises(ConfigError) as info:
        check_runs_dir("runs/sweeps", nodes=3, shared=False)
    message = str(info.value)
    assert "\n" not in message and "3 nodes" in message and "s3://" in message and "--shared-runs-dir" in message


@pytest.mark.parametrize("value, shared", [("1", True), ("true", True), ("", False), ("0", False)])
def test_the_environment_declares_a_shared_mount(monkeypatch, value, shared):
    monkeypatch.setenv(SHARED_ENV, value)
    assert declared_shared() is shared and declared_shared(True) is True
