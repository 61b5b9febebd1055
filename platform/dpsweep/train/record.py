"""A trial's outcome, and the one builder of its results-store row (every status).

Schema: dpsweep/results/SCHEMA.md. Completed, infeasible and failed trials all pass
through :func:`result_row`, so their columns mean the same thing whatever the path that
produced them (one process, Ray Train workers, or a trial that raised in Tune).
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from dpsweep import __version__
from dpsweep.console import json_safe
from dpsweep.privacy.ledger import NON_PRIVATE, PrivacyLedger
from dpsweep.settings import TrialConfig, store_columns
from dpsweep.train.metrics import Metrics

Status = Literal["completed", "infeasible", "failed"]


@dataclass
class TrialResult:
    """What one trial produced: status, privacy ledger, metrics, timings. Never text.

    `ledger` is None only for a failed trial, whose steps are unknown to the caller.
    """

    status: Status
    config: TrialConfig
    ledger: PrivacyLedger | None
    dataset: str
    label_names: tuple[str, ...] = ()
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    epochs: float = 0.0
    reason: str = ""  # why infeasible, or the failed trial's error (type and message)
    val: Metrics | None = None
    val_tuned: Metrics | None = None
    test: Metrics | None = None
    test_tuned: Metrics | None = None
    thresholds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    step_seconds: float = 0.0
    worker_start_seconds: float = 0.0  # starting a Ray Train worker group (0 when trained in-process)
    load_seconds: float = 0.0   # corpus, model and tokenisation, before training
    cache_seconds: float = 0.0  # frozen-layer cache (see dpsweep.model.prefix)
    eval_seconds: float = 0.0   # validation and test evaluation
    model_uri: str | None = None  # where the trained model was saved (dpsweep.export), if it was

    @classmethod
    def failed(cls, config: TrialConfig, *, dataset: str, error: str) -> TrialResult:
        """A trial that raised: its config and error, no metrics, no ε spent that we know of."""
        return cls(status="failed", config=config, ledger=None, dataset=dataset, reason=error)

    def to_dict(self) -> dict:
        """Flat summary (the `dpsweep train --json` object); inf is kept as float inf."""
        out = {"status": self.status, "reason": self.reason, "dataset": self.dataset,
               "model": self.config.model, **ledger_columns(self.config, self.ledger),
               "n_train": self.n_train, "n_val": self.n_val, "n_test": self.n_test, "epochs": self.epochs,
               **setting_columns(self.config),
               "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds,
               "step_seconds": self.step_seconds, "worker_start_seconds": self.worker_start_seconds}
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


def ledger_columns(config: TrialConfig, ledger: PrivacyLedger | None) -> dict[str, Any]:
    """The privacy-ledger columns: the ledger's, or (no ledger: a failed trial) the planned setup.

    Non-private trials read the same on every path: σ 0, C inf, accountant "none".
    """
    if ledger is not None:
        return ledger.to_dict()
    if not config.private:
        return {"epsilon_target": config.epsilon, "epsilon": None, "delta": config.delta, "sigma": 0.0,
                "clip": float("inf"), "sample_rate": None, "steps": None, "accountant": NON_PRIVATE}
    return {"epsilon_target": config.epsilon, "epsilon": None, "delta": config.delta, "sigma": config.sigma,
            "clip": config.clip, "sample_rate": None, "steps": None, "accountant": config.accountant}


def setting_columns(config: TrialConfig) -> dict[str, Any]:
    """The trial settings that are store columns (declared in dpsweep.settings)."""
    return {name: getattr(config, name) for name, _, _ in store_columns()}


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the dpsweep checkout, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def result_row(result: TrialResult, *, sweep_id: str, trial_id: str | None = None,
               started_at: datetime | None = None) -> dict:
    """The store row of a trial of any status: config, privacy ledger, metrics, timings, provenance."""
    import json

    c = result.config
    row = {
        "sweep_id": sweep_id, "trial_id": trial_id or uuid.uuid4().hex[:12], "dataset": result.dataset,
        "dataset_format": c.dataset_format, "model": c.model, "status": result.status,
        **ledger_columns(c, result.ledger), **setting_columns(c),
        "epochs": result.epochs if result.ledger is not None else None,
        "n_train": result.n_train or None, "n_val": result.n_val or None,
        "train_seconds": result.train_seconds, "wall_seconds": result.wall_seconds,
        "started_at": started_at or datetime.now(timezone.utc),
        "dpsweep_version": __version__, "git_commit": git_commit(), "error": result.reason or None,
        "config_json": c.to_json(), "model_uri": result.model_uri,
    }
    if result.val is not None:
        row.update(weighted_f1=result.val.weighted_f1, macro_f1=result.val.macro_f1,
                   micro_f1=result.val.micro_f1, auroc_macro=result.val.auroc_macro,
                   per_label_f1=json.dumps(json_safe(result.val.reported_per_label_f1())))
    if result.val_tuned is not None:
        row.update(weighted_f1_tuned=result.val_tuned.weighted_f1, macro_f1_tuned=result.val_tuned.macro_f1)
    if result.test is not None:
        row.update(test_weighted_f1=result.test.weighted_f1, test_macro_f1=result.test.macro_f1)
    return row


def store_trial(store: str, result: TrialResult, *, sweep_id: str) -> str:
    """Append a trial to the results store at `store`; returns the file written."""
    from dpsweep.results import ResultStore

    return ResultStore(store).append(result_row(result, sweep_id=sweep_id))
