"""One trial, Ray-free: calibrate, fine-tune with DP-LoRA (or without DP), evaluate.

Flat on purpose (nanoGPT style): read top to bottom to see exactly what a trial does.
"""

from __future__ import annotations

import math
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from dpsweep.data import Corpus, DataOptions, load_corpus
from dpsweep.model import LoraSettings, ModelSpec, load_classifier, resolve_model_path
from dpsweep.privacy import PrivacyLedger, compute_epsilon, validate_privacy_args
from dpsweep.train.batches import (
    EncodedSplit,
    PadCollate,
    encode,
    length_sorted_chunks,
    length_sorted_memory_manager,
    predict,
)
from dpsweep.train.config import TrialConfig
from dpsweep.train.loss import MultiLabelBCE
from dpsweep.train.metrics import Metrics, evaluate, tune_thresholds
from dpsweep.train.plan import StepPlan, plan_steps

Log = Callable[[str], None]


def log_stderr(message: str) -> None:
    print(f"[dpsweep] {message}", file=sys.stderr, flush=True)


@dataclass
class TrialResult:
    """What one trial produced: status, privacy ledger, metrics, timings. Never text."""

    status: str  # completed | infeasible
    config: TrialConfig
    ledger: PrivacyLedger
    dataset: str
    label_names: tuple[str, ...]
    n_train: int
    n_val: int
    n_test: int = 0
    epochs: float = 0.0
    reason: str = ""
    val: Metrics | None = None
    val_tuned: Metrics | None = None
    test: Metrics | None = None
    test_tuned: Metrics | None = None
    thresholds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    step_seconds: float = 0.0

    def to_dict(self) -> dict:
        """Flat summary (the `dpsweep train --json` object); inf is kept as float inf."""
        out = {"status": self.status, "reason": self.reason, "dataset": self.dataset,
               "model": self.config.model, **self.ledger.to_dict(),
               "epsilon_target": self.config.epsilon, "n_train": self.n_train, "n_val": self.n_val,
               "n_test": self.n_test, "epochs": self.epochs, "rank": self.config.rank,
               "lr": self.config.lr, "batch_size": self.config.batch_size,
               "max_length": self.config.max_length, "seed": self.config.seed,
               "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds,
               "step_seconds": self.step_seconds}
        for prefix, metrics in (("", self.val), ("test_", self.test)):
            if metrics is not None:
                out.update(metrics.to_dict(prefix))
        for prefix, metrics in (("", self.val_tuned), ("test_", self.test_tuned)):
            if metrics is not None:
                out[f"{prefix}weighted_f1_tuned"] = metrics.weighted_f1
                out[f"{prefix}macro_f1_tuned"] = metrics.macro_f1
        if self.thresholds:
            out["thresholds"] = dict(zip(self.label_names, self.thresholds, strict=True))
        out["config"] = self.config.to_dict()
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_trial_corpus(config: TrialConfig) -> Corpus:
    options = DataOptions(sections=config.sections, uncertain_policy=config.uncertain_policy,
                          val_fraction=config.val_fraction, seed=config.seed)
    return load_corpus(config.dataset_format, config.data_path, options)


def run_trial(config: TrialConfig, *, corpus: Corpus | None = None, log: Log = log_stderr) -> TrialResult:
    """Run one trial end to end and return its result (raises UserInputError on bad input)."""
    started = time.perf_counter()
    resolve_model_path(config.model)  # a wrong model folder fails before any data is read
    corpus = corpus if corpus is not None else load_trial_corpus(config)
    n_train = len(corpus.train)
    validate_privacy_args(epsilon_target=config.epsilon, delta=config.delta, n_train=n_train,
                          sigma=config.sigma, clip=config.clip)
    plan = plan_steps(config, n_train=n_train)
    base = dict(config=config, dataset=corpus.name, label_names=corpus.label_names,
                n_train=n_train, n_val=len(corpus.val), n_test=len(corpus.test) if corpus.test else 0)
    if not plan.feasible:
        log(f"infeasible: {plan.reason}")
        ledger = _ledger(config, plan, steps=0)
        return TrialResult(status="infeasible", ledger=ledger, reason=plan.reason,
                           wall_seconds=time.perf_counter() - started, **base)
    log(f"{corpus.name}: {n_train} train / {len(corpus.val)} val reports, "
        f"{'ε target ' + format(config.epsilon, 'g') if config.private else 'non-private'}, "
        f"q={plan.sample_rate:.4g}, σ={plan.sigma:.4g}, {plan.steps} steps "
        f"({plan.steps / plan.steps_per_epoch:.2f} epochs){'; ' + plan.reason if plan.reason else ''}")

    seed_everything(config.seed)
    spec = ModelSpec(name_or_path=config.model, pooling=config.pooling, head_bias_init=config.head_bias_init,
                     backbone_dropout=config.backbone_dropout,
                     lora=LoraSettings(rank=config.rank, alpha=config.lora_alpha,
                                       dropout=config.lora_dropout, targets=config.lora_targets,
                                       top_layers=config.lora_layers))
    model, tokenizer = load_classifier(spec, num_labels=len(corpus.label_names))
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    t0 = time.perf_counter()
    model, steps = fit(model, train, config, plan, log=log)
    train_seconds = time.perf_counter() - t0
    ledger = _ledger(config, plan, steps=steps)

    val = encode(corpus.val, tokenizer, max_length_tokens=config.max_length)
    probs = predict(model, val, batch_size=config.eval_batch_size)
    thresholds = tune_thresholds(probs, corpus.val.labels, corpus.val.mask)
    result = TrialResult(
        status="completed", ledger=ledger, epochs=steps / plan.steps_per_epoch,
        val=evaluate(probs, corpus.val.labels, corpus.val.mask, corpus.label_names),
        val_tuned=evaluate(probs, corpus.val.labels, corpus.val.mask, corpus.label_names, thresholds=thresholds),
        thresholds=[float(t) for t in thresholds], train_seconds=train_seconds,
        step_seconds=train_seconds / max(steps, 1), **base)
    if corpus.test is not None and len(corpus.test):
        test = encode(corpus.test, tokenizer, max_length_tokens=config.max_length)
        test_probs = predict(model, test, batch_size=config.eval_batch_size)
        result.test = evaluate(test_probs, corpus.test.labels, corpus.test.mask, corpus.label_names)
        result.test_tuned = evaluate(test_probs, corpus.test.labels, corpus.test.mask, corpus.label_names,
                                     thresholds=thresholds)
    result.wall_seconds = time.perf_counter() - started
    log(f"done: weighted F1 {result.val.weighted_f1:.4f} (tuned thresholds {result.val_tuned.weighted_f1:.4f}), "
        f"macro F1 {result.val.macro_f1:.4f}, ε spent {_fmt_eps(ledger.epsilon)}, "
        f"{steps} steps in {train_seconds:.1f} s")
    return result


def _fmt_eps(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:.4g}"


def _ledger(config: TrialConfig, plan: StepPlan, *, steps: int) -> PrivacyLedger:
    """The privacy ledger for the steps actually taken (ε recomputed by the accountant)."""
    if not config.private:
        return PrivacyLedger.non_private(delta=config.delta, sample_rate=plan.sample_rate, steps=steps)
    eps = compute_epsilon(sigma=plan.sigma, sample_rate=plan.sample_rate, steps=steps,
                          delta=config.delta, accountant=config.accountant) if steps else 0.0
    return PrivacyLedger(epsilon_target=config.epsilon, epsilon=eps, delta=config.delta, sigma=plan.sigma,
                         clip=config.clip, sample_rate=plan.sample_rate, steps=steps,
                         accountant=config.accountant)


def _optimizer_and_schedule(model, config: TrialConfig, total_steps: int):
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


def fit(model, train: EncodedSplit, config: TrialConfig, plan: StepPlan, *, log: Log):
    """Train for plan.steps logical steps; returns (model, steps actually taken)."""
    if config.private:
        return _fit_private(model, train, config, plan, log=log)
    return _fit_non_private(model, train, config, plan, log=log)


class _Progress:
    """Prints about ten progress lines per trial: step, loss, ε so far, time."""

    def __init__(self, total: int, log: Log, epsilon_of: Callable[[int], float] | None):
        self.total, self.log, self.epsilon_of = total, log, epsilon_of
        self.every = max(1, total // 10)
        self.start = time.perf_counter()
        self.losses: list[float] = []

    def step(self, steps: int, loss: float) -> None:
        self.losses.append(loss)
        if steps % self.every and steps != self.total:
            return
        eps = f", ε so far {_fmt_eps(self.epsilon_of(steps))}" if self.epsilon_of else ""
        elapsed = time.perf_counter() - self.start
        eta = elapsed / steps * (self.total - steps)
        recent = float(np.mean(self.losses[-self.every:]))
        self.log(f"step {steps}/{self.total}  loss {recent:.4f}{eps}  {elapsed:.0f} s elapsed, ETA {eta:.0f} s")


def _fit_non_private(model, train: EncodedSplit, config: TrialConfig, plan: StepPlan, *, log: Log):
    criterion = MultiLabelBCE("sum")
    optimizer, schedule = _optimizer_and_schedule(model, config, plan.steps)
    collate = PadCollate(train.pad_id)
    rng = np.random.default_rng(config.seed)
    lengths = [len(ids) for ids in train.input_ids]
    progress = _Progress(plan.steps, log, None)
    steps = 0
    while steps < plan.steps:
        order = rng.permutation(len(train))
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss_sum = 0.0
            for chunk in length_sorted_chunks(batch, lengths, config.physical_batch_size):
                input_ids, attention, targets = collate([train[i] for i in chunk])
                loss = criterion(model(input_ids, attention), targets) / len(batch)
                loss.backward()
                loss_sum += float(loss.detach())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
            steps += 1
            progress.step(steps, loss_sum)
            if steps >= plan.steps:
                break
    return model, steps


def _fit_private(model, train: EncodedSplit, config: TrialConfig, plan: StepPlan, *, log: Log):
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader

    optimizer, schedule = _optimizer_and_schedule(model, config, plan.steps)
    loader = DataLoader(train, batch_size=config.batch_size, collate_fn=PadCollate(train.pad_id))
    engine = PrivacyEngine(accountant=config.accountant)
    criterion = MultiLabelBCE("mean")
    private = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, criterion=criterion,
        noise_multiplier=plan.sigma, max_grad_norm=config.clip, poisson_sampling=True,
        grad_sample_mode=config.grad_sample_mode)
    if config.grad_sample_mode == "ghost":
        dp_model, dp_optimizer, criterion, dp_loader = private
    else:
        dp_model, dp_optimizer, dp_loader = private
    assert math.isclose(dp_loader.sample_rate, plan.sample_rate), "Opacus q differs from the calibrated q"

    progress = _Progress(plan.steps, log,
                         lambda t: compute_epsilon(sigma=plan.sigma, sample_rate=plan.sample_rate, steps=t,
                                                   delta=config.delta, accountant=config.accountant))
    steps = 0
    losses: list[float] = []
    # Frozen embeddings mean no input of a hooked module needs a gradient; Opacus' full
    # backward hooks are still correct then, and torch says so on every step.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    memory_safe_loader = length_sorted_memory_manager(
        dp_loader, max_physical_batch_size=config.physical_batch_size, optimizer=dp_optimizer,
        lengths=[len(ids) for ids in train.input_ids])
    while steps < plan.steps:
        for input_ids, attention, targets in memory_safe_loader:
            loss = criterion(dp_model(input_ids, attention), targets)
            loss.backward()
            losses.append(float(loss.detach()) * len(targets))
            dp_optimizer.step()
            dp_optimizer.zero_grad(set_to_none=True)
            if dp_optimizer._is_last_step_skipped:
                continue
            steps += 1
            schedule.step()
            progress.step(steps, sum(losses) / max(plan.sample_rate * len(train), 1))
            losses.clear()
            if steps >= plan.steps:
                break
    accountant_steps = sum(n for _, _, n in engine.accountant.history)
    assert accountant_steps == steps, f"accountant counted {accountant_steps} steps, loop took {steps}"
    return dp_model._module if hasattr(dp_model, "_module") else dp_model, steps
