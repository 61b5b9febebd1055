"""A trial's two workers on two Ray nodes (ray.cluster_utils.Cluster, one CPU a node)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from dpsweep.distributed import run_on_workers
from tests.distributed.conftest import quiet

pytestmark = pytest.mark.ray


@pytest.fixture
def two_node_cluster():
    import ray
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Unix socket paths
    # Cluster() records the head's address in <system temp>/ray/ray_current_cluster whatever
    # temp_dir says; on a fresh machine nothing has created that folder yet
    from ray._common.utils import get_default_ray_temp_dir

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp_dir,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_workers_on_two_nodes_train_one_trial(two_node_cluster, dp_config, tmp_path):
    import ray

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    run = run_on_workers(dp_config.override(max_epochs=0.5), num_workers=2, cpus_per_worker=1,
                         storage_path=str(tmp_path), name="two-nodes", checkpoint_every_steps=2, log=quiet)
    assert len(nodes) == 2
    assert {r.node_id for r in run.ranks} == nodes  # one CPU a node: PACK must still spread them
    assert run.ranks[0].weights_sha256 == run.ranks[1].weights_sha256
    assert run.trial.status == "completed" and run.trial.ledger.steps == run.ranks[0].steps > 0
