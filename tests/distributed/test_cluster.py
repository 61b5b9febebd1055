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


@pytest.mark.slow(reason="a two-node Ray cluster, about 60 s; test_workers.py's two-worker trial runs in CI")
def test_workers_on_two_nodes_train_one_trial(two_node_cluster, dp_config, tmp_path):
    import ray

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    run = run_on_workers(dp_config.override(max_epochs=0.5), num_workers=2, cpus_per_worker=1,
                         storage_path=str(tmp_path), name="two-nodes", checkpoint_every_steps=2, log=quiet)
    assert len(nodes) == 2
    assert {r.node_id for r in run.ranks} == nodes  # one CPU a node: PACK must still spread them
    assert run.ranks[0].weights_sha256 == run.ranks[1].weights_sha256
    assert run.trial.status == "completed" and run.trial.ledger.steps == run.ranks[0].steps > 0


@pytest.mark.slow(reason="a second two-node Ray cluster, about 65 s; test_workers_on_two_nodes_train_one_trial covers two nodes in CI")
def test_two_nodes_share_the_tokens_and_read_the_ledger_back_from_a_declared_shared_runs_dir(
        two_node_cluster, dp_config, tmp_path, tiny_model_dir):
    """The sweep's checks and sharing on two nodes: a local runs dir is refused until declared
    shared; the trial's ranks get the tokens from the object store (the data folder is gone);
    the checkpoint on the shared dir holds the ledger the result reports."""
    from pathlib import Path

    from ray.train import Checkpoint

    from dpsweep.distributed.shared import share_corpus
    from dpsweep.distributed.state import read_checkpoint
    from dpsweep.errors import ConfigError
    from dpsweep.model.loading import load_tokenizer
    from dpsweep.sweep.storage import alive_nodes, check_runs_dir
    from dpsweep.train.loop import load_trial_corpus
    from dpsweep.train.tokens import tokenize_corpus

    runs = str(tmp_path / "runs")
    assert alive_nodes() == 2
    with pytest.raises(ConfigError, match="local folder but the Ray cluster has 2 nodes.*--shared-runs-dir"):
        check_runs_dir(runs, nodes=alive_nodes(), shared=False)
    check_runs_dir(runs, nodes=alive_nodes(), shared=True)  # declared shared: accepted
    _sweep_refuses_a_local_runs_dir(tmp_path, dp_config, tiny_model_dir, runs)
    check_runs_dir("s3://bucket/runs", nodes=alive_nodes(), shared=False)
    data = tmp_path / "data"
    shutil.copytree(dp_config.data_path, data)
    config = dp_config.override(data_path=str(data), max_epochs=0.5)
    tokens = tokenize_corpus(load_trial_corpus(config), load_tokenizer(tiny_model_dir),
                             max_length_tokens=config.max_length)
    shutil.rmtree(data)  # neither node may read the corpus again
    run = run_on_workers(config, num_workers=2, cpus_per_worker=1, storage_path=runs, name="shared",
                         checkpoint_every_steps=2, log=quiet, shared=share_corpus(tokens, model=config.model))
    assert run.trial.status == "completed" and len({r.node_id for r in run.ranks}) == 2
    latest = sorted(p.parent for p in Path(runs, "shared").glob("checkpoint_*/*.json"))[-1]
    saved = read_checkpoint(Checkpoint.from_directory(str(latest)), config=config, where=str(latest))
    assert saved.outcome is not None and saved.outcome.trial.ledger == run.trial.ledger


def _sweep_refuses_a_local_runs_dir(tmp_path, dp_config, tiny_model_dir, runs: str) -> None:
    """run_sweep on the connected two-node cluster stops at the check, before any trial."""
    import yaml

    from dpsweep.errors import ConfigError
    from dpsweep.results import ResultStore
    from dpsweep.sweep.runner import inspect_sweep, run_sweep
    from dpsweep.sweep.spec import load_spec
    from tests.sweep.conftest import tiny_space

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space(dp_config.data_path, tiny_model_dir, store=tmp_path / "store")))
    spec, plan = inspect_sweep(load_spec(space))
    messages: list[str] = []
    with pytest.raises(ConfigError, match="--runs-dir .* is a local folder but the Ray cluster has 2 nodes"):
        run_sweep(spec, plan, sweep_id="s", store=ResultStore(spec.store), runs_dir=runs, log=messages.append)
    assert not any("tokenized once" in m for m in messages)  # refused before any work for trials
