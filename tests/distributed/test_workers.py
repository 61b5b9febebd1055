"""One trial on two Ray Train workers: ranks agree, ε matches one process, failures resume.

Each test starts Ray workers (about 10 s for the group, 20-40 s a test on 2 CPUs).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from dpsweep.distributed import run_on_workers
from dpsweep.distributed.faults import FailOnce
from dpsweep.privacy import compute_epsilon
from dpsweep.train import plan_steps, run_trial
from tests.distributed.conftest import quiet

pytestmark = pytest.mark.ray

# ε computed in a Ray worker (OMP_NUM_THREADS=1) and in this process (maybe more threads)
# agrees to a few ulps, not bit for bit: the accountants' numpy reductions depend on the
# thread count. 1e-9 is far below any budget's meaning and far above float noise.
EPS_REL_TOL = 1e-9


@pytest.fixture(scope="module")
def two_worker_run(local_ray, dp_config, tmp_path_factory):
    """The DP trial on 2 workers, checkpointing every 2 steps (each report costs Ray about 1.5 s here)."""
    return run_on_workers(dp_config, num_workers=2, cpus_per_worker=1, name="two-workers",
                          storage_path=str(tmp_path_factory.mktemp("runs")), checkpoint_every_steps=2, log=quiet)


def test_two_workers_agree_and_spend_the_one_process_epsilon(two_worker_run, dp_config):
    trial, ranks = two_worker_run.trial, two_worker_run.ranks
    single = run_trial(dp_config, log=quiet)
    assert trial.status == "completed"
    assert [r.rank for r in ranks] == [0, 1]
    assert ranks[0].weights_sha256 == ranks[1].weights_sha256  # same noisy update on every rank
    assert [r.steps for r in ranks] == [single.ledger.steps] * 2
    # every rank's accountant agrees (each rank is its own process)
    assert all(math.isclose(r.epsilon, trial.ledger.epsilon, rel_tol=EPS_REL_TOL) for r in ranks)
    # same (σ, q, T) as the one-process trial, so the same ε (up to the other process's rounding)
    assert replace(trial.ledger, epsilon=single.ledger.epsilon) == single.ledger
    assert math.isclose(trial.ledger.epsilon, single.ledger.epsilon, rel_tol=EPS_REL_TOL)
    assert math.isclose(trial.ledger.epsilon, compute_epsilon(sigma=1.0, sample_rate=single.ledger.sample_rate,
                                                              steps=single.ledger.steps, delta=dp_config.delta,
                                                              accountant="rdp"), rel_tol=EPS_REL_TOL)
    assert trial.val is not None and trial.test is not None and len(trial.thresholds) == len(trial.label_names)
    assert trial.worker_start_seconds > 0 and trial.train_seconds > 0
    assert trial.to_dict()["worker_start_seconds"] == trial.worker_start_seconds


@pytest.mark.slow(reason="a killed Ray Train worker and a resume, about 70 s; `make test-slow`")
def test_killed_worker_resumes_from_its_checkpoint(two_worker_run, dp_config, tmp_path):
    marker = tmp_path / "rank-1-exited"
    run = run_on_workers(dp_config, num_workers=2, cpus_per_worker=1, storage_path=str(tmp_path / "runs"),
                         name="killed", checkpoint_every_steps=3, max_failures=1, log=quiet,
                         step_hook=FailOnce(rank=1, at_step=4, marker=str(marker)))
    plan = plan_steps(dp_config, n_train=run.trial.n_train)
    assert marker.exists()  # rank 1 did exit once
    assert [r.resumed_from_steps for r in run.ranks] == [3, 3]
    assert run.trial.ledger.steps == plan.steps
    recomputed = compute_epsilon(sigma=plan.sigma, sample_rate=plan.sample_rate, steps=plan.steps,
                                 delta=dp_config.delta, accountant="rdp")
    assert math.isclose(run.trial.ledger.epsilon, recomputed, rel_tol=EPS_REL_TOL)  # computed in a worker
    # Weights, optimizer, accountant and random streams were restored exactly:
    assert run.ranks[0].weights_sha256 == run.ranks[1].weights_sha256 == two_worker_run.ranks[0].weights_sha256
    # ...and the restarted trial is still one trial: one row in the results store
    from dpsweep.results import ResultStore
    from dpsweep.train.record import store_trial

    store_trial(str(tmp_path / "store"), run.trial, sweep_id="killed")
    rows = ResultStore(tmp_path / "store").read().to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    # exact: this process wrote run.trial's own float, and Parquet float64 is lossless
    assert rows[0]["steps"] == plan.steps and rows[0]["epsilon"] == run.trial.ledger.epsilon


@pytest.mark.slow(reason="Ray Train inside a Tune trial, about 70 s; `make test-slow`")
def test_non_private_trial_inside_a_tune_function_trial(local_ray, dp_config, tmp_path):
    from ray import tune

    config = dp_config.override(epsilon=math.inf)
    storage = str(tmp_path)

    def tune_trial(params):  # a closure: pickled by value, nothing to import on the workers
        from ray import tune as tune_in_trial

        from dpsweep.distributed import run_trial_on_workers

        result = run_trial_on_workers(params["config"], num_workers=2, cpus_per_worker=0.9,
                                      storage_path=f"{storage}/train", name="in-tune", log=lambda _m: None)
        tune_in_trial.report({"steps": result.ledger.steps, "epsilon": result.ledger.epsilon,
                              "weighted_f1": result.val.weighted_f1})

    grid = tune.Tuner(tune.with_resources(tune_trial, {"cpu": 0.1}), param_space={"config": config},
                      run_config=tune.RunConfig(storage_path=f"{storage}/tune", name="sweep")).fit()
    assert not grid.errors
    metrics = grid[0].metrics
    assert metrics["steps"] == plan_steps(config, n_train=269).steps and math.isinf(metrics["epsilon"])
    assert 0.0 <= metrics["weighted_f1"] <= 1.0


@pytest.mark.slow(reason="two ranks and a sweep's shared states, about 105 s; `make test-slow`")
def test_ranks_reuse_the_sweeps_frozen_states_and_the_callers_tokens(local_ray, dp_config, tmp_path):
    """Every rank takes the sweep's frozen-layer states of its depth from the object store (Ray
    copies them to a node once; the ranks there share them) instead of computing its own; and
    outside a sweep the caller reads and tokenises the corpus once for its ranks."""
    from dpsweep.distributed.shared import PrefixShare, SharedPrefix
    from dpsweep.train.loop import compute_prefix_states, load_trial_corpus

    config = dp_config.override(lora_layers=1, max_epochs=0.5)
    states, _ = compute_prefix_states(config, load_trial_corpus(config))
    prefix = SharedPrefix(model=config.model, num_layers=2, shares=(PrefixShare.put(states, serves=("lora",)),))
    messages: list[str] = []
    shared = run_on_workers(config, num_workers=2, cpus_per_worker=1, storage_path=str(tmp_path / "runs"),
                            name="shared-prefix", log=messages.append, prefix=prefix)
    own = run_on_workers(config, num_workers=2, cpus_per_worker=1, storage_path=str(tmp_path / "runs"),
                         name="own-prefix", log=quiet)
    assert shared.trial.status == own.trial.status == "completed"
    assert [r.frozen_cache for r in shared.ranks] == ["shared (depth 1)"] * 2
    assert [r.frozen_cache for r in own.ranks] == ["computed (depth 1)"] * 2
    assert shared.ranks[0].weights_sha256 == shared.ranks[1].weights_sha256
    once = [m for m in messages if m.startswith("tokenized once: ")]
    assert len(once) == 1 and "trials read it, never the corpus" in once[0], messages


@pytest.mark.slow(reason="two ranks and the shared warm start, about 55 s; tests/sweep/test_shared_warm.py runs in CI")
def test_rank_zero_warm_starts_and_every_rank_trains_from_its_weights(two_worker_run, dp_config, tmp_path):
    """The public warm start runs on rank 0 only; the others take its weights when the model is
    wrapped (DPDDP broadcasts every parameter), so the ranks still end bit-identical, and not
    where the same trial without a warm start ends."""
    from dpsweep.data import write_synthetic

    public = write_synthetic("mimic-cxr", tmp_path / "public", n=120, seed=1)
    config = dp_config.override(public_format="mimic-cxr", public_path=str(public), public_warm_steps=3)
    warm = run_on_workers(config, num_workers=2, cpus_per_worker=1, storage_path=str(tmp_path / "runs"),
                          name="warm-start", log=quiet)
    assert warm.trial.status == "completed"
    assert warm.ranks[0].weights_sha256 == warm.ranks[1].weights_sha256
    assert warm.ranks[0].weights_sha256 != two_worker_run.ranks[0].weights_sha256
