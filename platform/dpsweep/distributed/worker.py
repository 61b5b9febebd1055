"""One rank of a distributed trial: the function every Ray Train worker runs.

Each rank takes the tokenised corpus (and a sweep's frozen-layer states) from the object store,
where the caller put them once, and builds the same seeded model; DP trials wrap it in
Opacus' DPDDP, so each rank Poisson-samples its share of the data, clips per sample,
and rank 0 alone adds the noise before the gradients are summed. Every
`checkpoint_every_steps` steps rank 0 reports a checkpoint (see `state.py`); a restarted
group resumes from the latest. Rank 0 evaluates and reports the outcome last.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpsweep.distributed.sampling import lockstep_loader
from dpsweep.distributed.shared import SharedCorpus, SharedPrefix, SharedWarm
from dpsweep.distributed.state import (
    Outcome,
    RankSummary,
    Saved,
    read_checkpoint,
    write_outcome,
    write_training,
)
from dpsweep.settings import TrialConfig
from dpsweep.train.loop import (
    PrivateTrainer,
    Progress,
    Trainer,
    World,
    log_stderr,
    prefix_origin,
    run_trial,
    trainer_ledger,
)
from dpsweep.train.plan import StepPlan

StepHookOnRank = Callable[..., None]  # called as hook(rank=..., steps=...) after every step


@dataclass(frozen=True)
class WorkerJob:
    """What every rank needs to run its share of one trial."""

    config: TrialConfig
    plan: StepPlan
    checkpoint_every_steps: int
    use_gpu: bool = False
    threads_per_worker: int = 1
    step_hook: StepHookOnRank | None = None  # tests inject worker failures here
    output_dir: str | None = None  # rank 0 saves the trained model there
    shared: SharedCorpus | None = None  # the tokenised corpus: no rank reads the files
    prefix: SharedPrefix | None = None  # a sweep's frozen-layer states: no rank computes them
    warm: SharedWarm | None = None  # a sweep's public warm start: rank 0 starts from it


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point (`train_loop_per_worker`): the one trial pipeline, on this rank."""
    import ray.train

    started_at = time.time()
    job: WorkerJob = loop_config["job"]
    torch.set_num_threads(job.threads_per_worker)
    saved = read_checkpoint(ray.train.get_checkpoint(), config=job.config, where="the run's storage")
    rank = RayTrainRank(job, world=_world(job), saved=saved, started_at=started_at)
    if saved is not None and saved.outcome is not None:  # finished before a restart: same outcome
        _report_outcome(saved.outcome, rank.world)
        return
    corpus = job.shared.get(job.config) if job.shared is not None else None
    rank.prefix_states = (job.prefix.states_for(job.config, log=log_stderr, who=f"rank {rank.world.rank}")
                          if job.prefix is not None else None)
    warm = (job.warm.weights_for(job.config, log=log_stderr, who="rank 0")
            if job.warm is not None and rank.world.rank == 0 else None)
    result = run_trial(job.config, corpus=corpus, plan=job.plan, ranks=rank, output_dir=job.output_dir,
                       replace_output=True, prefix_states=rank.prefix_states, warm_weights=warm)
    if result is not None:
        _report_outcome(Outcome(trial=result, ranks=rank.summaries, first_started_at=rank.clock.first_started_at),
                        rank.world)


class RayTrainRank:
    """`dpsweep.train.loop.Ranks` on a Ray Train worker: DPDDP, lockstep sampling, checkpoints."""

    def __init__(self, job: WorkerJob, *, world: World, saved: Saved | None, started_at: float):
        self.job, self.world, self.saved = job, world, saved
        self.clock = _Clock(first_started_at=started_at)
        self.resumed_from = 0
        self.summaries: list[RankSummary] = []
        self.prefix_states: list | None = None  # the sweep's frozen-layer stores this rank was given

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.job.config.private:
            _broadcast_parameters(model)
            return model
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

        return DPDDP(model)

    def trainer_options(self) -> dict[str, Any]:
        if not self.job.config.private:
            return {}
        return {"adapt_loader": lockstep_loader}

    def restore(self, trainer: Trainer) -> None:
        self.clock.start = time.perf_counter()  # training starts now (loading is not training)
        if self.saved is not None:
            _restore(trainer, self.saved, self.world, self.clock)
        self.resumed_from = trainer.steps

    def on_step(self, trainer: Trainer, progress: Progress | None) -> Callable[[int, float], None]:
        return _StepCallback(trainer, self.job, self.world, self.clock, progress)

    def train_seconds(self) -> float:
        return self.clock.train_seconds()

    def finish(self, trainer: Trainer) -> bool:
        """Gather how every rank ended; ranks other than 0 make their last report here."""
        import ray.train

        self.summaries = _gather(_summary(trainer, self.job, self.world, resumed_from=self.resumed_from,
                                          prefix=prefix_origin(trainer.module, self.prefix_states)),
                                 self.world)
        if self.world.rank != 0:
            ray.train.report({}, checkpoint=None)
            return False
        return True


def _world(job: WorkerJob) -> World:
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    device = str(ray.train.torch.get_device()) if job.use_gpu else "cpu"
    return World(rank=context.get_world_rank(), size=context.get_world_size(), device=device)


def _rank_seed(seed: int, rank: int) -> int:
    """A distinct sampling seed per rank, so ranks draw independent Poisson batches."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def _broadcast_parameters(model: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights (DPDDP does this itself for DP trials)."""
    with torch.no_grad():
        for p in model.parameters():
            torch.distributed.broadcast(p.data, 0)


class _Clock:
    """Training seconds summed over attempts, and when the first attempt began."""

    def __init__(self, *, first_started_at: float):
        self.first_started_at = first_started_at
        self.before = 0.0  # training seconds of earlier attempts, up to their last checkpoint
        self.start = time.perf_counter()

    def train_seconds(self) -> float:
        return self.before + time.perf_counter() - self.start


class _StepCallback:
    """After every step: log progress (rank 0), checkpoint on schedule, run the test hook."""

    def __init__(self, trainer: Trainer, job: WorkerJob, world: World, clock: _Clock, progress: Progress | None):
        self.trainer, self.job, self.world, self.clock = trainer, job, world, clock
        self.progress = progress

    def __call__(self, steps: int, loss: float) -> None:
        loss = _sum_over_ranks(loss, self.world)  # each rank's loss covers its share of the batch
        if self.progress is not None:
            self.progress.step(steps, loss)
        if steps % self.job.checkpoint_every_steps == 0 or steps == self.job.plan.steps:
            self._checkpoint(steps)
        if self.job.step_hook is not None:
            self.job.step_hook(rank=self.world.rank, steps=steps)

    def _checkpoint(self, steps: int) -> None:
        import ray.train

        rng = _gather(_rng_state(self.trainer, self.world), self.world)
        if self.world.rank != 0:
            ray.train.report({"steps": steps}, checkpoint=None)
            return
        training = {**self.trainer.state_dict(), "rng": rng, "train_seconds": self.clock.train_seconds(),
                    "first_started_at": self.clock.first_started_at}
        ledger = trainer_ledger(self.trainer, self.job.config, self.job.plan)
        with tempfile.TemporaryDirectory() as folder:
            write_training(Path(folder), config=self.job.config, ledger=ledger, training=training)
            # No loss in the metrics: it is a noise-free function of the private training data.
            ray.train.report({"steps": steps, "epsilon": ledger.epsilon},
                             checkpoint=ray.train.Checkpoint.from_directory(folder))


def _restore(trainer: Trainer, saved: Saved, world: World, clock: _Clock) -> None:
    """Continue from a checkpoint: weights, optimizer, schedule, steps, accountant, RNGs."""
    trainer.load_state_dict(saved.training)
    clock.before = float(saved.training["train_seconds"])
    clock.first_started_at = float(saved.training["first_started_at"])
    states = saved.training["rng"]
    if len(states) == world.size:
        _set_rng_state(states[world.rank], trainer, world)
    else:  # resumed with another number of workers: fresh, distinct streams
        torch.manual_seed(_rank_seed(trainer.config.seed + trainer.steps, world.rank))


def _rng_state(trainer: Trainer, world: World) -> dict[str, torch.Tensor]:
    """This rank's random state to checkpoint: the global one (dropout; nothing private).

    The DP noise and Poisson-sampling generators are saved only when the trial asked for
    reproducible noise: secure noise is drawn afresh from the OS on every (re)start and is
    never written anywhere.
    """
    state = {"torch": torch.get_rng_state()}
    if world.device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(world.device)
    if isinstance(trainer, PrivateTrainer) and trainer.config.noise == "reproducible":
        state["sampler"] = trainer.sampling_generator.get_state()
        state["noise"] = trainer.noise_generator.get_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor], trainer: Trainer, world: World) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and world.device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"], world.device)
    if isinstance(trainer, PrivateTrainer) and "sampler" in state:
        trainer.sampling_generator.set_state(state["sampler"])
        trainer.noise_generator.set_state(state["noise"])


def _summary(trainer: Trainer, job: WorkerJob, world: World, *, resumed_from: int, prefix: str = "") -> RankSummary:
    import ray

    digest = hashlib.sha256()
    for name, value in sorted(trainer.trainable_state().items()):
        digest.update(name.encode())
        digest.update(value.numpy().tobytes())
    return RankSummary(rank=world.rank, node_id=ray.get_runtime_context().get_node_id(), steps=trainer.steps,
                       epsilon=trainer_ledger(trainer, job.config, job.plan).epsilon, weights_sha256=digest.hexdigest(),
                       resumed_from_steps=resumed_from, frozen_cache=prefix)


def _gather(obj: Any, world: World) -> list[Any]:
    """Every rank's `obj`, in rank order (a collective: all ranks must call it)."""
    out: list[Any] = [None] * world.size
    torch.distributed.all_gather_object(out, obj)
    return out


def _sum_over_ranks(value: float, world: World) -> float:
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return float(t.item())


def _report_outcome(outcome: Outcome, world: World) -> None:
    """The last report: rank 0 attaches the outcome (Result.metrics needs a checkpoint)."""
    import ray.train

    if world.rank != 0:
        ray.train.report({}, checkpoint=None)
        return
    trial = outcome.trial
    metrics = {"final": True, "steps": trial.ledger.steps, "epsilon": trial.ledger.epsilon,
               "weighted_f1": trial.val.weighted_f1 if trial.val is not None else None}
    with tempfile.TemporaryDirectory() as folder:
        write_outcome(Path(folder), outcome)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
