"""One trial result -> one results-store row (schema: dpsweep/results/SCHEMA.md)."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from dpsweep import __version__
from dpsweep.train.loop import TrialResult


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
               started_at: datetime | None = None, error: str | None = None) -> dict:
    """The store row of a trial: config, privacy ledger, metrics, timings, provenance."""
    c, ledger = result.config, result.ledger
    row = {
        "sweep_id": sweep_id, "trial_id": trial_id or uuid.uuid4().hex[:12], "dataset": result.dataset,
        "dataset_format": c.dataset_format, "model": c.model, "status": result.status,
        **{k: getattr(ledger, k) for k in ("epsilon_target", "epsilon", "delta", "sigma", "clip",
                                           "sample_rate", "steps", "accountant")},
        "rank": c.rank, "lora_alpha": c.lora_alpha, "lora_dropout": c.lora_dropout, "lr": c.lr,
        "batch_size": c.batch_size, "epochs": result.epochs, "max_length": c.max_length, "seed": c.seed,
        "n_train": result.n_train, "n_val": result.n_val, "train_seconds": result.train_seconds,
        "wall_seconds": result.wall_seconds, "started_at": started_at or datetime.now(timezone.utc),
        "dpsweep_version": __version__, "git_commit": git_commit(), "error": error or (result.reason or None),
        "config_json": c.to_json(),
    }
    if result.val is not None:
        row.update(weighted_f1=result.val.weighted_f1, macro_f1=result.val.macro_f1,
                   micro_f1=result.val.micro_f1, auroc_macro=result.val.auroc_macro,
                   per_label_f1=json.dumps(result.val.per_label_f1))
    if result.val_tuned is not None:
        row.update(weighted_f1_tuned=result.val_tuned.weighted_f1, macro_f1_tuned=result.val_tuned.macro_f1)
    if result.test is not None:
        row.update(test_weighted_f1=result.test.weighted_f1, test_macro_f1=result.test.macro_f1)
    return row


def store_trial(store: str, result: TrialResult, *, sweep_id: str) -> str:
    """Append a trial to the results store at `store`; returns the file written."""
    from dpsweep.results import ResultStore

    return ResultStore(store).append(result_row(result, sweep_id=sweep_id))
