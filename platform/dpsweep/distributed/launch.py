"""Run one trial on a Ray Train worker group (Ray Train V2 TorchTrainer) and return its result.

The caller's process plans the trial (an infeasible budget never starts workers), then
fits a TorchTrainer whose workers run `worker.train_worker`. Works after `ray.init` and
inside a Ray Tune function trial alike. The result comes back through the final
checkpoint, since Ray Train keeps metrics only for reports that carry one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpsweep.distributed.shared import SharedCorpus, SharedPrefix, SharedWarm, share_for_ranks
from dpsweep.distributed.state import (
    CONFIG_FILE,
    Outcome,
    RankSummary,
    check_same_trial,
    read_checkpoint,
)
from dpsweep.distributed.worker import StepHookOnRank, WorkerJob, train_worker
from dpsweep.errors import ConfigError, PrivacyGuardError
from dpsweep.model import resolve_model_path
from dpsweep.settings import TrialConfig
from dpsweep.train.loop import (
    Log,
    done_summary,
    infeasible_result,
    load_trial_corpus,
    log_stderr,
    plan_summary,
    plan_trial,
)
from dpsweep.train.plan import StepPlan
from dpsweep.train.record import TrialResult

CHECKPOINTS_PER_TRIAL = 10


@dataclass
class WorkersRun:
    """A trial trained on workers: its result, plus how each rank ended."""

    trial: TrialResult
    ranks: list[RankSummary] = field(default_factory=list)  # empty when no worker started


def run_trial_on_workers(
    config: TrialConfig, *, num_workers: int, use_gpu: bool = False, cpus_per_worker: float = 1,
    gpus_per_worker: float = 0, storage_path: str, name: str, max_failures: int = 1,
    checkpoint_every_steps: int | None = None, log: Log = log_stderr, output_dir: str | None = None,
    shared: SharedCorpus | None = None, prefix: SharedPrefix | None = None, warm: SharedWarm | None = None,
) -> TrialResult:
    """The same trial as `run_trial`, trained with Opacus distributed DP on Ray Train workers.

    Each of `num_workers` ranks samples its share of every Poisson batch; the sampling
    rate, noise and steps are those of the one-process trial, so ε is the same.
    Checkpoints go to `storage_path`/`name` every `checkpoint_every_steps` steps (default:
    about ten per trial); after a worker failure the group restarts from the latest, up
    to `max_failures` times. Reusing `name` for the same config resumes or returns that run.
    `shared`: a sweep's tokenised corpus in the object store; then neither this process nor
    any worker reads or tokenises the corpus. Without it this process reads and tokenises the
    corpus once and shares it with its ranks the same way. `prefix`: a sweep's frozen-layer
    states (`SharedPrefix`); every rank takes those of the trial's depth instead of computing them.
    `warm`: a sweep's public warm start (`SharedWarm`); rank 0 starts from it.
    """
    return run_on_workers(config, num_workers=num_workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                          gpus_per_worker=gpus_per_worker, storage_path=storage_path, name=name,
                          max_failures=max_failures, checkpoint_every_steps=checkpoint_every_steps, log=log,
                          output_dir=output_dir, shared=shared, prefix=prefix, warm=warm).trial


def run_on_workers(
    config: TrialConfig, *, num_workers: int, use_gpu: bool = False, cpus_per_worker: float = 1,
    gpus_per_worker: float = 0, storage_path: str, name: str, max_failures: int = 1,
    checkpoint_every_steps: int | None = None, log: Log = log_stderr,
    callbacks: Sequence[Any] = (), step_hook: StepHookOnRank | None = None, output_dir: str | None = None,
    shared: SharedCorpus | None = None, prefix: SharedPrefix | None = None, warm: SharedWarm | None = None,
) -> WorkersRun:
    """`run_trial_on_workers`, also returning how each rank ended.

    `callbacks` go to Ray Train's RunConfig (e.g. Tune's TuneReportCallback, to see the
    checkpoint reports in Tune); `step_hook(rank=, steps=)` runs on every rank after
    each step (tests inject worker failures with it).
    """
    started = time.perf_counter()
    _check_worker_args(num_workers=num_workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                       gpus_per_worker=gpus_per_worker, max_failures=max_failures,
                       checkpoint_every_steps=checkpoint_every_steps)
    resolve_model_path(config.model)  # a wrong model folder fails before any worker starts
    corpus = shared.get(config, log=log) if shared is not None else load_trial_corpus(config)
    plan = plan_trial(config, corpus)
    if not plan.feasible:
        log(f"infeasible: {plan.reason}")
        return WorkersRun(trial=infeasible_result(config, corpus, plan, wall_seconds=time.perf_counter() - started))
    log(f"{plan_summary(config, corpus, plan)}; {num_workers} workers")
    storage = _storage_uri(storage_path)
    _check_resumable(storage, name, config)
    if shared is None:  # read here once, not once per rank
        shared = share_for_ranks(config, corpus, log=log)
    job = WorkerJob(config=config, plan=plan, step_hook=step_hook, use_gpu=use_gpu, output_dir=output_dir,
                    shared=shared, prefix=prefix, warm=warm,
                    checkpoint_every_steps=checkpoint_every_steps or _default_checkpoint_every(plan),
                    threads_per_worker=max(1, math.floor(cpus_per_worker)))
    trainer = _torch_trainer(job, num_workers=num_workers, cpus_per_worker=cpus_per_worker,
                             gpus_per_worker=gpus_per_worker, storage=storage, name=name,
                             max_failures=max_failures, callbacks=callbacks)
    fit_started_at = time.time()
    outcome = _outcome(trainer.fit(), config)
    trial = outcome.trial
    trial.worker_start_seconds = max(0.0, outcome.first_started_at - fit_started_at)
    trial.wall_seconds = time.perf_counter() - started
    log(done_summary(trial))
    return WorkersRun(trial=trial, ranks=outcome.ranks)


def _check_worker_args(*, num_workers: int, use_gpu: bool, cpus_per_worker: float, gpus_per_worker: float,
                       max_failures: int, checkpoint_every_steps: int | None) -> None:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ConfigError(f"num_workers must be an integer >= 1, got {num_workers!r}; pass e.g. num_workers=2")
    if not cpus_per_worker > 0:
        raise ConfigError(f"cpus_per_worker must be > 0 (Ray refuses 0), got {cpus_per_worker!r}; "
                         "pass e.g. cpus_per_worker=1")
    if gpus_per_worker < 0 or (gpus_per_worker > 0 and not use_gpu):
        raise ConfigError(f"gpus_per_worker = {gpus_per_worker!r} needs use_gpu=True and a value >= 0; "
                         "pass use_gpu=True, or gpus_per_worker=0 for CPU workers")
    if max_failures < -1:
        raise ConfigError(f"max_failures must be >= 0 (or -1 for no limit), got {max_failures!r}")
    every = checkpoint_every_steps
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(f"checkpoint_every_steps must be an integer >= 1, got {every!r}; "
                          "pass e.g. 50, or None for about ten checkpoints per trial")


def _default_checkpoint_every(plan: StepPlan) -> int:
    return max(1, math.ceil(plan.steps / CHECKPOINTS_PER_TRIAL))


def _storage_uri(storage_path: str) -> str:
    """Local paths made absolute (Ray needs that); URIs such as s3:// pass unchanged."""
    return storage_path if "://" in storage_path else os.path.abspath(storage_path)


def _check_resumable(storage: str, name: str, config: TrialConfig) -> None:
    """Refuse early when a local run of this name holds another config's checkpoints."""
    run_dir = Path(storage) / name
    if "://" in storage or not run_dir.is_dir():
        return
    for config_file in sorted(run_dir.glob(f"*/{CONFIG_FILE}"))[-1:]:  # checkpoint names sort by time
        check_same_trial(config_file.read_text(), config, where=str(run_dir))


def _torch_trainer(job: WorkerJob, *, num_workers: int, cpus_per_worker: float, gpus_per_worker: float,
                   storage: str, name: str, max_failures: int, callbacks: Sequence[Any]):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": cpus_per_worker}
    if job.use_gpu:
        resources["GPU"] = gpus_per_worker or 1
    scaling = ScalingConfig(num_workers=num_workers, use_gpu=job.use_gpu, resources_per_worker=resources,
                            placement_strategy="PACK")
    run = RunConfig(name=name, storage_path=storage, failure_config=FailureConfig(max_failures=max_failures),
                    checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=list(callbacks))
    return TorchTrainer(train_worker, train_loop_config={"job": job}, scaling_config=scaling, run_config=run,
                        torch_config=TorchConfig(backend="nccl" if job.use_gpu else "gloo"))


def _outcome(result, config: TrialConfig) -> Outcome:
    saved = read_checkpoint(result.checkpoint, config=config, where=str(result.path))
    if saved is None or saved.outcome is None:
        raise PrivacyGuardError("the trial's last checkpoint holds no outcome, so its ledger is unknown; "
                                f"see the Ray Train logs under {result.path}")
    return saved.outcome
