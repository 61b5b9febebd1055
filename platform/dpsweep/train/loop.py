"""One trial, Ray-free: calibrate, fine-tune with DP-LoRA (or without DP), evaluate.

Flat on purpose (nanoGPT style): read top to bottom to see exactly what a trial does.
"""

from __future__ import annotations

import math
import random
import secrets
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

from dpsweep.data import Corpus, DataOptions, load_corpus
from dpsweep.errors import ConfigError, PrivacyGuardError
from dpsweep.model import resolve_model_path
from dpsweep.privacy import PrivacyLedger, compute_epsilon, validate_privacy_args
from dpsweep.privacy.accountants import fast_epsilon, parse_accountant
from dpsweep.privacy.ledger import dp_ledger
from dpsweep.settings import TrialConfig
from dpsweep.train.batches import (
    EmptySafeCollate,
    EncodedSplit,
    PadCollate,
    PatientCollate,
    PatientSplit,
    encode,
    length_sorted_chunks,
    length_sorted_memory_manager,
    on_host,
    predict,
)
from dpsweep.train.loss import MultiLabelBCE
from dpsweep.train.methods import (
    build_trial_model,
    caches_frozen_layers,
    encode_public,
    load_public_corpus,
    load_warm_state,
    warm_start,
    warm_state,
)
from dpsweep.train.metrics import evaluate, tune_thresholds
from dpsweep.train.plan import StepPlan, logical_batch_size, plan_steps, sample_rate_for
from dpsweep.train.record import TrialResult

Log = Callable[[str], None]


def log_stderr(message: str) -> None:
    print(f"[dpsweep] {message}", file=sys.stderr, flush=True)


def _quiet(_message: str) -> None:
    pass


class Ranks(Protocol):
    """What one rank of a distributed trial adds to the one-process trial (dpsweep.distributed).

    `run_trial` calls these at fixed points; without a `Ranks` it trains in this process.
    """

    world: World

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module: ...  # wrap (DPDDP) or sync weights
    def trainer_options(self) -> dict[str, Any]: ...  # extra PrivateTrainer arguments (sampling)
    def restore(self, trainer: Trainer) -> None: ...  # continue from the latest checkpoint
    def on_step(self, trainer: Trainer, progress: Progress | None) -> StepHook: ...
    def train_seconds(self) -> float: ...  # training time summed over attempts
    def finish(self, trainer: Trainer) -> bool: ...  # True on the rank that evaluates (rank 0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_trial_corpus(config: TrialConfig) -> Corpus:
    options = DataOptions(sections=config.sections, uncertain_policy=config.uncertain_policy,
                          val_fraction=config.val_fraction, seed=config.seed,
                          text_column=config.text_column, label_columns=config.label_columns)
    return load_corpus(config.dataset_format, config.data_path, options)


def run_trial(config: TrialConfig, *, corpus: Corpus | None = None, plan: StepPlan | None = None,
              log: Log = log_stderr, prefix_states: dict | None = None, device: str = "cpu",
              ranks: Ranks | None = None, output_dir: str | None = None,
              replace_output: bool = False, warm_weights: dict | None = None) -> TrialResult | None:
    """Run one trial end to end and return its result (raises UserInputError on bad input).

    One pipeline for every path (nanoGPT's `ddp` / `master_process`): without `ranks` it
    trains in this process on `device`; on a Ray Train rank `ranks` wraps the model, keeps
    the ranks' sampling in step and checkpoints, and only rank 0 evaluates and returns a
    result (other ranks return None). `plan`: the calibration made by the caller (ranks
    never re-plan). `prefix_states`: frozen-layer outputs computed once for a whole sweep
    (see `compute_prefix_states`); reports they lack are computed here. `output_dir`: save
    the trained model there (a folder or an s3:// / gs:// URI; see dpsweep.export) and
    record it as `result.model_uri` (`replace_output`: replace a model saved there before).
    `warm_weights`: the public warm start a sweep computed once for trials of this config's
    `warm_start_key` (see `compute_warm_weights`); the trial starts from it instead of
    running its own.
    """
    started = time.perf_counter()
    world = ranks.world if ranks is not None else World(device=device)
    master = world.rank == 0
    log = log if master else _quiet
    resolve_model_path(config.model)  # a wrong model folder fails before any data is read
    corpus = corpus if corpus is not None else load_trial_corpus(config)
    plan = plan if plan is not None else plan_trial(config, corpus)
    check_plan_fits(plan, config, n_units=training_units(config, corpus))
    if not plan.feasible:
        log(f"infeasible: {plan.reason}")
        return infeasible_result(config, corpus, plan, wall_seconds=time.perf_counter() - started)
    if ranks is None:
        log(plan_summary(config, corpus, plan))
    shared_warm = warm_weights is not None and bool(config.public_warm_steps)
    # With the sweep's warm start only the linear method still reads the public corpus (its vocabulary)
    public = (None if shared_warm and config.method != "linear"
              else load_public_corpus(config, label_names=corpus.label_names))
    model, tokenizer = build_trial_model(config, num_labels=len(corpus.label_names), public=public,
                                         device=world.device)
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    warm = None if shared_warm else encode_public(public, tokenizer, config)
    t_cache = time.perf_counter()
    cache_prefix(model, train, config, log=log, states=prefix_states, public=warm)
    if master and shared_warm:
        load_warm_state(model, warm_weights)
        log(f"warm start: the sweep's ({config.public_warm_steps} non-private steps on the public corpus, "
            "computed once for every trial); no ε spent")
    elif master:  # the other ranks take rank 0's weights when the model is wrapped (DPDDP or a broadcast)
        warm_start(model, warm, config, device=world.device, log=log)
    t0 = time.perf_counter()
    if ranks is None:
        trainer = make_trainer(model, train, config, plan, world=world)
    else:
        trainer = make_trainer(ranks.prepare(model), train, config, plan, world=world, **ranks.trainer_options())
        ranks.restore(trainer)
    progress = Progress(plan.steps, log, epsilon_after(config, plan), first_step=trainer.steps,
                        show_loss=not config.private) if master else None
    trainer.run(on_step=ranks.on_step(trainer, progress) if ranks is not None else progress.step)
    train_seconds = ranks.train_seconds() if ranks is not None else time.perf_counter() - t0
    if ranks is not None and not ranks.finish(trainer):
        return None
    t_eval = time.perf_counter()
    result = evaluate_trial(on_host(trainer.module, world.device), tokenizer, config, corpus, plan,
                            ledger=trainer_ledger(trainer, config, plan, cross_check=True,
                                                  patient_records=most_reports_per_patient(corpus)),
                            train_seconds=train_seconds, log=log)
    result.wall_seconds = time.perf_counter() - started
    result.load_seconds, result.cache_seconds = t_cache - started, t0 - t_cache
    result.eval_seconds = time.perf_counter() - t_eval
    if output_dir is not None:
        from dpsweep.export.artifact import save_trial_model_to

        result.model_uri = save_trial_model_to(output_dir, model=trainer.module.to("cpu"), tokenizer=tokenizer,
                                               result=result, force=replace_output)
        log(f"model saved to {result.model_uri}")
    log(done_summary(result))
    return result


def training_units(config: TrialConfig, corpus: Corpus) -> int:
    """How many privacy units the training split holds: reports, or (privacy_unit patient) patients.

    Sampling, clipping, δ and q are all per unit.
    """
    if config.privacy_unit == "record" or not config.private:
        return len(corpus.train)
    if not corpus.groups_are_patients:
        raise ConfigError(f"privacy_unit = 'patient' needs patient ids, but the {corpus.format} data set "
                          f"{corpus.name!r} has none (a csv needs a patient_id column); add one, or pass "
                          "--privacy-unit record")
    return len(set(corpus.train.groups))


def check_plan_fits(plan: StepPlan, config: TrialConfig, *, n_units: int) -> None:
    """The corpus this process read must give the q the trial was calibrated with."""
    q = sample_rate_for(n_train=n_units, batch_size=logical_batch_size(config, n_train=n_units))
    if not math.isclose(q, plan.sample_rate):
        raise PrivacyGuardError(f"this process's corpus gives q={q:.6g} but the trial was planned with "
                                f"q={plan.sample_rate:.6g}; every rank must read the same data")


def plan_trial(config: TrialConfig, corpus: Corpus) -> StepPlan:
    """Check the privacy arguments against the corpus, then calibrate (σ, steps)."""
    n_units = training_units(config, corpus)
    validate_privacy_args(epsilon_target=config.epsilon, delta=config.delta, n_train=n_units,
                          sigma=config.sigma, clip=config.clip)
    return plan_steps(config, n_train=n_units)


def plan_summary(config: TrialConfig, corpus: Corpus, plan: StepPlan) -> str:
    """One log line: data sizes, budget, q, σ and steps."""
    return (f"{corpus.name}: {len(corpus.train)} train / {len(corpus.val)} val reports, "
            f"{'ε target ' + format(config.epsilon, 'g') if config.private else 'non-private'}, "
            f"q={plan.sample_rate:.4g}, σ={plan.sigma:.4g}, {plan.steps} steps "
            f"({plan.steps / plan.steps_per_epoch:.2f} epochs){'; ' + plan.reason if plan.reason else ''}")


def done_summary(result: TrialResult) -> str:
    """One log line: validation F1, ε spent, steps and training time."""
    return (f"done: weighted F1 {result.val.weighted_f1:.4f} (tuned thresholds {result.val_tuned.weighted_f1:.4f}), "
            f"macro F1 {result.val.macro_f1:.4f}, ε spent {_fmt_eps(result.ledger.epsilon)}, "
            f"{result.ledger.steps} steps in {result.train_seconds:.1f} s")


def _corpus_fields(config: TrialConfig, corpus: Corpus) -> dict[str, Any]:
    return dict(config=config, dataset=corpus.name, label_names=corpus.label_names, n_train=len(corpus.train),
                n_val=len(corpus.val), n_test=len(corpus.test) if corpus.test else 0)


def infeasible_result(config: TrialConfig, corpus: Corpus, plan: StepPlan, *, wall_seconds: float) -> TrialResult:
    """The result of a trial whose budget allows no training at all."""
    return TrialResult(status="infeasible", ledger=trial_ledger(config, plan, steps=0), reason=plan.reason,
                       wall_seconds=wall_seconds, **_corpus_fields(config, corpus))


def trial_model(config: TrialConfig, *, num_labels: int, device: str | torch.device = "cpu",
                public: Corpus | None = None):
    """(classifier, tokenizer) of a trial's method: seeded, adapters injected, on `device`."""
    return build_trial_model(config, num_labels=num_labels, public=public, device=device)


def evaluate_trial(model, tokenizer, config: TrialConfig, corpus: Corpus, plan: StepPlan, *,
                   ledger: PrivacyLedger, train_seconds: float, log: Log = log_stderr) -> TrialResult:
    """A completed trial's result: validation (and test) metrics of the trained model.

    Thresholds are tuned per label on validation and applied unchanged to test.
    `wall_seconds` is left for the caller, who knows when the trial started.
    """
    val = encode(corpus.val, tokenizer, max_length_tokens=config.max_length)
    probs = predict(model, val, batch_size=config.eval_batch_size, progress=EvalProgress("validation", log))
    thresholds = tune_thresholds(probs, corpus.val.labels, corpus.val.mask)
    result = TrialResult(
        status="completed", ledger=ledger, epochs=ledger.steps / plan.steps_per_epoch,
        val=evaluate(probs, corpus.val.labels, corpus.val.mask, corpus.label_names),
        val_tuned=evaluate(probs, corpus.val.labels, corpus.val.mask, corpus.label_names, thresholds=thresholds),
        thresholds=[float(t) for t in thresholds], train_seconds=train_seconds,
        step_seconds=train_seconds / max(ledger.steps, 1), **_corpus_fields(config, corpus))
    if corpus.test is not None and len(corpus.test):
        test = encode(corpus.test, tokenizer, max_length_tokens=config.max_length)
        test_probs = predict(model, test, batch_size=config.eval_batch_size, progress=EvalProgress("test", log))
        result.test = evaluate(test_probs, corpus.test.labels, corpus.test.mask, corpus.label_names)
        result.test_tuned = evaluate(test_probs, corpus.test.labels, corpus.test.mask, corpus.label_names,
                                     thresholds=thresholds)
    return result


class EvalProgress:
    """A line every `every_s` seconds while a large split is evaluated (counts only, no report)."""

    def __init__(self, split: str, log: Log, *, every_s: float = 30.0) -> None:
        self.split, self.log, self.every_s = split, log, every_s
        self.started = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s or done >= total:
            return
        self.last = now
        elapsed = now - self.started
        self.log(f"evaluating {self.split}: {done}/{total} reports, {elapsed:.0f} s elapsed, "
                 f"ETA {elapsed * (total - done) / done:.0f} s")


def cache_prefix(model, train: EncodedSplit | None, config: TrialConfig, *, log: Log, states=None,
                 public: EncodedSplit | None = None) -> None:
    """Compute the frozen lower layers once for the training (and warm-start) reports (dpsweep.model.prefix).

    `states`: a sweep's shared `PrefixStates` stores (in memory, or memory-mapped in its run folder).
    `train` None: the warm-start reports only (a sweep's shared warm start reads no private report).
    """
    if not caches_frozen_layers(config) or (train is None and public is None):
        return
    t0 = time.perf_counter()
    public_ids = public.input_ids if public is not None else None
    pad_id = train.pad_id if train is not None else public.pad_id
    why_not = model.enable_prefix_cache(train.input_ids if train is not None else [], pad_id=pad_id,
                                        states=states, public=public_ids)
    if why_not:
        log(f"frozen-layer cache off: {why_not}")
        return
    cache = model.prefix_cache
    reused = _reused_stores(cache, states)
    computed = len(cache.stores) - len(reused)
    where = (("shared by the sweep, " + ("memory-mapped at " + ", ".join(s.path for s in reused if s.path)
                                          if any(s.path for s in reused) else "in memory"))
             if reused else "computed by this trial, in memory")
    n = (len(train) if train is not None else 0) + (len(public_ids) if public_ids is not None else 0)
    log(f"cached the {cache.first_adapted} frozen lower layers for {n} reports in "
        f"{time.perf_counter() - t0:.1f} s ({where}{'; some computed here' if reused and computed else ''}, fp16)")


def _as_list(states) -> list:
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _reused_stores(cache, states) -> list:
    return [s for s in cache.stores if states is not None and any(s is t for t in _as_list(states))]


def prefix_origin(model, states) -> str:
    """Where a model's frozen-layer states came from: off, computed, shared, or shared+computed.

    `states`: the shared stores the trial was given (None: none). Recorded per rank of a
    distributed trial, so a test (or a reader of the checkpoint) sees that every rank reused them.
    """
    cache = getattr(model, "prefix_cache", None)
    if cache is None or not cache.stores:
        return "off"
    reused = len(_reused_stores(cache, states))
    if not reused:
        return f"computed (depth {cache.first_adapted})"
    extra = "+computed" if reused < len(cache.stores) else ""
    return f"shared{extra} (depth {cache.first_adapted})"


def compute_prefix_states(config: TrialConfig, corpus: Corpus, *, folder: str | None = None,
                          max_bytes: int | None = None):
    """Frozen-layer outputs of the training (and warm-start) reports, to share across a sweep's trials.

    Valid for every trial of the same model, tokens and depth (`frozen_depth`), whatever
    method, LoRA rank, lr, clip, σ, batch or epochs it uses. Returns (list of PrefixStates or
    None, what was done or why not, for the sweep's log): in memory up to `max_bytes`
    (default `dpsweep.model.prefix.MEMORY_BUDGET_BYTES`; a sweep of several depths passes what
    the earlier depths left of it), else memory-mapped in `folder` (when given).
    """
    from dpsweep.model.prefix import MEMORY_BUDGET_BYTES

    max_bytes = MEMORY_BUDGET_BYTES if max_bytes is None else max(0, max_bytes)
    if not caches_frozen_layers(config):
        return None, "off: the config caches nothing (prefix_cache off, no lora_layers, or method linear)"
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    sequences = encode(corpus.train, tokenizer, max_length_tokens=config.max_length).input_ids
    public_ids = None
    if config.public_path is not None:  # warm starts read the public reports: cache them too
        public = load_public_corpus(config, label_names=corpus.label_names)
        public_ids = encode_public(public, tokenizer, replace(config, public_warm_steps=1)).input_ids
    why_not = model.enable_prefix_cache(sequences, pad_id=tokenizer.pad_token_id, public=public_ids, folder=folder,
                                        max_bytes=max_bytes)
    if why_not:
        return None, f"off: {why_not}"
    stores = list(model.prefix_cache.stores)
    size = sum(s.data.nbytes for s in stores)
    left = "" if max_bytes == MEMORY_BUDGET_BYTES else f" ({max_bytes / 2**30:.2f} GiB of it left)"
    budget = f"{size / 2**30:.2f} GiB fp16, in-memory budget {MEMORY_BUDGET_BYTES / 2**30:.0f} GiB{left}"
    paths = [s.path for s in stores if s.path]
    where = (f"memory-mapped at {', '.join(paths)} ({budget})" if paths
             else f"in memory, shared through Ray's object store ({budget})")
    return stores, where


def compute_warm_weights(config: TrialConfig, corpus: Corpus, *, prefix_states=None,
                         log: Log = log_stderr) -> dict[str, torch.Tensor] | None:
    """The trainable weights after `config`'s public warm start, for a sweep to compute once.

    Exactly what a trial of the same `warm_start_key` does before its private training
    (same seed, model, public corpus and steps); None when the config takes no warm start.
    Public data only: the weights cost no ε and hold no private report.
    """
    public = load_public_corpus(config, label_names=corpus.label_names)
    if public is None or not config.public_warm_steps:
        return None
    model, tokenizer = build_trial_model(config, num_labels=len(corpus.label_names), public=public, device="cpu")
    warm = encode_public(public, tokenizer, config)
    cache_prefix(model, None, config, log=_quiet, states=prefix_states, public=warm)  # no private report
    warm_start(model, warm, config, device="cpu", log=log)
    return warm_state(model)


def _fmt_eps(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:.4g}"


def trial_ledger(config: TrialConfig, plan: StepPlan, *, steps: int, patient_records: int | None = None,
                 cross_check: bool = False) -> PrivacyLedger:
    """The privacy ledger for the steps actually taken (ε recomputed by the accountant).

    `cross_check`: the final ledger of a trial, with the PLD ε and the ε of one patient.
    """
    if not config.private:
        return PrivacyLedger.non_private(delta=config.delta, sample_rate=plan.sample_rate, steps=steps,
                                         privacy_unit=config.privacy_unit)
    return dp_ledger(epsilon_target=config.epsilon, delta=config.delta, sigma=plan.sigma, clip=config.clip,
                     sample_rate=plan.sample_rate, steps=steps, accountant=config.accountant,
                     privacy_unit=config.privacy_unit, noise=config.noise, patient_records=patient_records,
                     cross_check=cross_check)


def most_reports_per_patient(corpus: Corpus) -> int | None:
    """The most training reports any one patient has (None when the data set knows no patients)."""
    if not corpus.groups_are_patients or not len(corpus.train):
        return None
    from collections import Counter

    return max(Counter(corpus.train.groups).values())


def optimizer_and_schedule(model, config: TrialConfig, total_steps: int):
    head = [p for name, p in model.named_parameters() if p.requires_grad and name.startswith("head.")]
    adapters = [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("head.")]
    optimizer = torch.optim.AdamW([{"params": adapters, "lr": config.lr}, {"params": head, "lr": config.head_lr}],
                                  weight_decay=config.weight_decay)
    if config.lr_schedule == "linear":
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.0, 1.0 - step / max(total_steps, 1)))
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return optimizer, schedule


def trainer_ledger(trainer: Trainer, config: TrialConfig, plan: StepPlan, **final: Any) -> PrivacyLedger:
    """The ledger of the steps the trainer took; a DP trainer's from its accountant's history
    (steps restored from a checkpoint included). `final`: see trial_ledger."""
    if isinstance(trainer, PrivateTrainer):
        return ledger_from_history(config, plan, trainer.accountant_history, **final)
    return trial_ledger(config, plan, steps=trainer.steps, **final)


def ledger_from_history(config: TrialConfig, plan: StepPlan, history: list[tuple[float, float, int]],
                        **final: Any) -> PrivacyLedger:
    """The ledger of a DP trial from its Opacus accountant's (σ, q, steps) history."""
    for sigma, sample_rate, _ in history:
        if not (math.isclose(sigma, plan.sigma) and math.isclose(sample_rate, plan.sample_rate)):
            raise PrivacyGuardError(f"the accountant counted steps at σ={sigma}, q={sample_rate}, not the "
                                    f"plan's σ={plan.sigma}, q={plan.sample_rate}; the ε would be wrong")
    return trial_ledger(config, plan, steps=sum(int(n) for _, _, n in history), **final)


def epsilon_after(config: TrialConfig, plan: StepPlan) -> Callable[[int], float] | None:
    """ε spent after t steps of this trial's plan (None without DP), for progress lines.

    The accountant's own number (`fast_epsilon` is bit-for-bit Opacus' PRV / RDP answer)
    with the per-step RDP curve of (σ, q) computed once: Opacus re-derives it on every
    call, about 1.2 s a progress line at typical q on one core (most of a short trial's
    training time before this).
    """
    if not config.private:
        return None
    compute_epsilon(sigma=plan.sigma, sample_rate=plan.sample_rate, steps=0, delta=config.delta,
                    accountant=config.accountant)  # checks σ, q, δ and the accountant's name once
    accountant = parse_accountant(config.accountant)

    def epsilon_of(t: int) -> float:
        return fast_epsilon(accountant, float(plan.sigma), float(plan.sample_rate), int(t), float(config.delta))
    return epsilon_of


class Progress:
    """Prints about ten progress lines per trial: step, ε so far, time (and loss without DP).

    A DP trial's training loss is a noise-free function of the private batch: never shown.
    """

    def __init__(self, total: int, log: Log, epsilon_of: Callable[[int], float] | None, *, first_step: int = 0,
                 show_loss: bool = False):
        self.total, self.log, self.epsilon_of, self.show_loss = total, log, epsilon_of, show_loss
        self.every = max(1, -(-total // 10))  # at most ten lines (and the last step)
        self.start = time.perf_counter()
        self.first_step = first_step  # steps already taken before this run (resumed from a checkpoint)
        self.losses: list[float] = []

    def step(self, steps: int, loss: float) -> None:
        self.losses.append(loss)
        if steps % self.every and steps != self.total:
            return
        eps = f", ε so far {_fmt_eps(self.epsilon_of(steps))}" if self.epsilon_of else ""
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(steps - self.first_step, 1) * (self.total - steps)
        loss_text = f"  loss {float(np.mean(self.losses[-self.every:])):.4f}" if self.show_loss else ""
        self.losses = self.losses[-self.every:]
        self.log(f"step {steps}/{self.total}{loss_text}{eps}  {elapsed:.0f} s elapsed, ETA {eta:.0f} s")


# -- The training loop, in pieces the distributed trial (dpsweep.distributed) reuses. --

StepHook = Callable[[int, float], None]  # called after each logical step with (steps taken, loss)


@dataclass(frozen=True)
class World:
    """Where one copy of the training loop runs: its rank among `size` copies, and its device."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The classifier inside Opacus' GradSampleModule and (DP)DDP wrappers."""
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
    from opacus.grad_sample.gsm_base import (
        AbstractGradSampleModule,  # hooks and ghost wrappers alike
    )

    while True:
        if isinstance(model, AbstractGradSampleModule):
            model = model._module
        elif isinstance(model, (DPDDP, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


class Trainer:
    """One trial's training state: model, optimizer, LR schedule and steps taken.

    `run` trains until the plan's step count; `state_dict`/`load_state_dict` hold what a
    checkpoint needs to resume (the private trainer adds its accountant's history).
    """

    def __init__(self, model: torch.nn.Module, config: TrialConfig, plan: StepPlan, world: World):
        self.model = model  # what the forward pass runs on (possibly wrapped)
        self.config, self.plan, self.world = config, plan, world
        self.optimizer, self.schedule = optimizer_and_schedule(unwrap(model), config, plan.steps)
        self.steps = 0
        # EMA of the trained weights (config.ema > 0): post-processing of the DP iterates, no ε
        self.average = ({name: p.detach().clone() for name, p in self._trainable().items()}
                        if config.ema else None)

    @property
    def module(self) -> torch.nn.Module:
        return unwrap(self.model)

    def run(self, *, on_step: StepHook | None = None) -> int:
        """Take the remaining logical steps of the plan; returns the steps taken in all.

        With `ema`, the model ends holding the moving average of its weights.
        """
        for loss in self._logical_steps():
            self._update_average()
            if on_step is not None:
                on_step(self.steps, loss)
        if self.average is not None:
            with torch.no_grad():
                for name, p in self._trainable().items():
                    p.copy_(self.average[name])
        return self.steps

    def _trainable(self) -> dict[str, torch.nn.Parameter]:
        return {name: p for name, p in self.module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def _update_average(self) -> None:
        if self.average is None:
            return
        for name, p in self._trainable().items():
            self.average[name].lerp_(p.detach(), 1.0 - self.config.ema)

    def _logical_steps(self) -> Iterator[float]:
        raise NotImplementedError

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained weights (LoRA adapters and head) by parameter name, on the CPU."""
        return {name: p.detach().cpu().clone() for name, p in self.module.named_parameters() if p.requires_grad}

    def state_dict(self) -> dict[str, Any]:
        state = {"trainable": self.trainable_state(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "steps": self.steps}
        if self.average is not None:
            state["average"] = {name: t.cpu().clone() for name, t in self.average.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        params = {name: p for name, p in self.module.named_parameters() if p.requires_grad}
        if set(params) != set(state["trainable"]):
            raise PrivacyGuardError("the checkpoint holds other trainable parameters than this trial's model; "
                                    "resume only the trial that wrote it")
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.steps = int(state["steps"])
        if self.average is not None and "average" in state:
            for name, value in state["average"].items():
                self.average[name].copy_(value)


class NonPrivateTrainer(Trainer):
    """Plain minibatch training; with several ranks each takes a share of every batch."""

    def __init__(self, model, train: EncodedSplit, config: TrialConfig, plan: StepPlan, *, world: World = World()):
        super().__init__(model, config, plan, world)
        self.train = train
        self.criterion = MultiLabelBCE("sum", pos_weight=config.pos_weight)
        self.collate = PadCollate(train.pad_id)
        self.lengths = train.lengths()

    def _logical_steps(self) -> Iterator[float]:
        batches = _epoch_batches(np.random.default_rng(self.config.seed), n=len(self.train),
                                 batch_size=logical_batch_size(self.config, n_train=len(self.train)))
        for _ in range(self.steps):  # resumed: skip the batches already trained on
            next(batches)
        while self.steps < self.plan.steps:
            batch = next(batches)
            loss = self._backward(batch[self.world.rank :: self.world.size], batch_size=len(batch))
            if self.world.size > 1:
                _sum_gradients_across_ranks(self.optimizer)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.schedule.step()
            self.steps += 1
            yield loss

    def _backward(self, indices, *, batch_size: int) -> float:
        """Accumulate this rank's share of the batch-mean loss gradient; returns its loss."""
        loss_sum = 0.0
        for chunk in length_sorted_chunks(indices, self.lengths, physical_batch(self.config)) if len(indices) else []:
            input_ids, attention, targets = (t.to(self.world.device) for t in self.collate([self.train[i] for i in chunk]))
            loss = self.criterion(self.model(input_ids, attention), targets) / batch_size
            loss.backward()
            loss_sum += float(loss.detach())
        return loss_sum


def physical_batch(config: TrialConfig) -> int:
    """Rows per forward/backward pass: the linear method's rows are a few kB, so at least 1024."""
    return max(config.physical_batch_size, 1024) if config.method == "linear" else config.physical_batch_size


def _epoch_batches(rng: np.random.Generator, *, n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Shuffled minibatches, epoch after epoch (the last batch of an epoch may be short)."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _sum_gradients_across_ranks(optimizer: torch.optim.Optimizer) -> None:
    """All-reduce (sum) the gradients: each rank's loss is already divided by the whole batch."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)


def clipping_arguments(optimizer: torch.optim.Optimizer, config: TrialConfig) -> dict[str, Any]:
    """Opacus' clipping arguments (`max_grad_norm`, `clipping`) for this trial.

    "per_layer" clips each trainable tensor on its own. The head's tensors share
    `head_clip_share` of C², the adapters' tensors the rest, so one example's whole
    gradient still has norm <= C and noise σ·C keeps the ε the accountant computed.
    Flat clipping lets the adapters' gradient, which grows with the head's weights, take
    nearly all of C within a few steps: the head's share shrinks and noise swamps it.
    """
    if config.clipping == "flat":
        return {"max_grad_norm": config.clip}
    adapters, head = (len(group["params"]) for group in optimizer.param_groups)
    if not adapters or not head:
        return {"max_grad_norm": config.clip}
    share = config.head_clip_share
    norms = ([config.clip * math.sqrt((1 - share) / adapters)] * adapters
             + [config.clip * math.sqrt(share / head)] * head)
    return {"max_grad_norm": norms, "clipping": "per_layer"}


class PrivateTrainer(Trainer):
    """DP-SGD with Opacus: Poisson sampling, per-sample clipping, Gaussian noise.

    Pass a model wrapped in Opacus' DPDDP to train on several ranks: Opacus then samples
    per rank (DistributedUniformWithReplacementSampler) and adds noise on rank 0 only.
    `adapt_loader` may replace Opacus' Poisson loader before batches are split into
    physical chunks (the distributed trial keeps its ranks in step with it).
    """

    def __init__(self, model, train: EncodedSplit, config: TrialConfig, plan: StepPlan, *, world: World = World(),
                 adapt_loader: Callable[[Any], Any] | None = None):
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader

        super().__init__(model, config, plan, world)
        self.per_patient = config.privacy_unit == "patient"
        data = PatientSplit(train, max_reports=config.max_reports_per_patient) if self.per_patient else train
        collate = (PatientCollate if self.per_patient else EmptySafeCollate)(
            train.pad_id, num_labels=train.targets.shape[1])
        self.noise_generator, self.sampling_generator = dp_generators(config, world)
        loader = DataLoader(data, batch_size=logical_batch_size(config, n_train=len(data)), collate_fn=collate,
                            generator=self.sampling_generator)
        self.engine = PrivacyEngine(accountant=config.accountant)
        self.criterion = MultiLabelBCE("mean", pos_weight=config.pos_weight)
        private = self.engine.make_private(
            module=model, optimizer=self.optimizer, data_loader=loader, criterion=self.criterion,
            noise_multiplier=plan.sigma, poisson_sampling=True, noise_generator=self.noise_generator,
            grad_sample_mode=config.grad_sample_mode, **clipping_arguments(self.optimizer, config))
        if config.grad_sample_mode == "ghost":
            self.model, self.optimizer, self.criterion, dp_loader = private
        else:
            self.model, self.optimizer, dp_loader = private
        dp_loader.batch_sampler.generator = self.sampling_generator  # Poisson masks: never the global RNG
        if not math.isclose(dp_loader.sample_rate, plan.sample_rate):
            raise PrivacyGuardError(f"Opacus samples with q={dp_loader.sample_rate:.6g} but the budget was "
                                    f"calibrated for q={plan.sample_rate:.6g}")
        if adapt_loader is not None:
            dp_loader = adapt_loader(dp_loader)
        self.n_units = len(data)
        lengths = data.lengths() if self.per_patient else train.lengths()
        self.batches = length_sorted_memory_manager(
            dp_loader, max_physical_batch_size=physical_batch(config), optimizer=self.optimizer,
            lengths=lengths, collate_fn=collate)

    @property
    def accountant_history(self) -> list[tuple[float, float, int]]:
        """(σ, q, steps) entries the Opacus accountant has counted."""
        return list(self.engine.accountant.history)

    def run(self, *, on_step: StepHook | None = None) -> int:
        steps = super().run(on_step=on_step)
        counted = sum(n for _, _, n in self.engine.accountant.history)
        if counted != steps:
            raise PrivacyGuardError(f"the accountant counted {counted} steps but the loop took {steps}")
        return steps

    def _logical_steps(self) -> Iterator[float]:
        # Frozen embeddings mean no input of a hooked module needs a gradient; Opacus' full
        # backward hooks are still correct then, and torch says so on every step.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        losses: list[float] = []
        device = self.world.device
        while self.steps < self.plan.steps:
            for input_ids, attention, targets, *owner in self.batches:
                targets = targets.to(device)
                loss = self.criterion(self.model(input_ids.to(device), attention.to(device)), targets)
                loss.backward()
                if self.per_patient:
                    sum_grad_samples_by_owner(self.optimizer, owner[0].to(device))
                losses.append(float(loss.detach()) * len(targets))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                if self.optimizer._is_last_step_skipped:
                    continue
                self.steps += 1
                self.schedule.step()
                yield sum(losses) / max(self.plan.sample_rate * self.n_units, 1)
                losses.clear()
                if self.steps >= self.plan.steps:
                    break

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "accountant": self.engine.accountant.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.engine.accountant.load_state_dict(state["accountant"])


def dp_generators(config: TrialConfig, world: World) -> tuple[torch.Generator, torch.Generator]:
    """(noise, Poisson sampling) generators of a DP trial on this rank.

    noise = "secure" (default): seeded from the operating system's entropy, never stored,
    never in a checkpoint, so nothing dpsweep writes lets anyone replay the noise.
    noise = "reproducible": seeded from `seed` and the rank (rows say it is not private).
    `seed` keeps controlling initialisation, splits and everything non-private either way.
    """
    if config.noise == "secure":
        seeds = [secrets.randbits(63), secrets.randbits(63)]
    else:
        seeds = [int(x) for x in np.random.SeedSequence([config.seed, world.rank, 0xD9]).generate_state(2)]
    return (torch.Generator(device=world.device).manual_seed(seeds[0]),
            torch.Generator().manual_seed(seeds[1]))


def sum_grad_samples_by_owner(optimizer, owner: torch.Tensor) -> None:
    """Patient-level DP: replace each per-report gradient by its patient's sum (one row per patient).

    Opacus then clips each patient's summed gradient to C and counts patients, so the
    noise protects a whole patient. `owner[r]` is the patient (0..b-1) of report row r.
    """
    patients = int(owner.max()) + 1
    for p in optimizer.params:
        grad_sample = getattr(p, "grad_sample", None)
        if grad_sample is None:
            continue
        if isinstance(grad_sample, list):
            raise PrivacyGuardError("per-sample gradients of several backward passes are pending; "
                                    "patient sums need one backward pass per physical batch")
        summed = torch.zeros((patients, *grad_sample.shape[1:]), dtype=grad_sample.dtype, device=grad_sample.device)
        p.grad_sample = summed.index_add_(0, owner, grad_sample)


def make_trainer(model, train: EncodedSplit, config: TrialConfig, plan: StepPlan, *, world: World = World(),
                 **private_options: Any) -> Trainer:
    """The private or non-private trainer the config asks for (options: see PrivateTrainer)."""
    if config.private:
        return PrivateTrainer(model, train, config, plan, world=world, **private_options)
    return NonPrivateTrainer(model, train, config, plan, world=world)
