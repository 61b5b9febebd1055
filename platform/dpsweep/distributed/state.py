"""What a distributed trial's checkpoints hold, and how they are written and read back.

A checkpoint directory holds:

- ``training.pt``: trainable weights (LoRA + head), optimizer and LR-schedule state,
  steps taken and, for DP trials, the Opacus accountant's state (its (σ, q, steps)
  history), plus every rank's random-number state, so a resumed trial continues exactly
  where the checkpoint left it and its ε counts the steps from before the failure;
- ``ledger.json``: the privacy ledger of the steps taken so far (readable without torch);
- ``trial_config.json``: the resolved trial config, so a resume never mixes trials;
- ``outcome.pkl``: only in the final checkpoint: the TrialResult and per-rank summaries.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dpsweep.console import json_safe
from dpsweep.errors import ConfigError
from dpsweep.privacy import PrivacyLedger
from dpsweep.settings import TrialConfig
from dpsweep.train.record import TrialResult

TRAINING_FILE = "training.pt"
LEDGER_FILE = "ledger.json"
CONFIG_FILE = "trial_config.json"
OUTCOME_FILE = "outcome.pkl"


@dataclass(frozen=True)
class RankSummary:
    """How one rank ended; the ranks of a sound trial agree on all but rank and node_id."""

    rank: int
    node_id: str
    steps: int
    epsilon: float  # from this rank's own accountant history (inf without DP)
    weights_sha256: str  # of the trained weights (LoRA + head), bit for bit
    resumed_from_steps: int  # steps restored from a checkpoint when this attempt began (0: fresh)


@dataclass
class Outcome:
    """The final checkpoint's content: what the caller of the trial gets back."""

    trial: TrialResult
    ranks: list[RankSummary] = field(default_factory=list)
    first_started_at: float = 0.0  # time.time() when rank 0 of the first attempt began


@dataclass
class Saved:
    """A checkpoint read back: training state, or the finished outcome, and timings."""

    config_json: str
    training: dict[str, Any] | None = None
    outcome: Outcome | None = None


def write_training(folder: Path, *, config: TrialConfig, ledger: PrivacyLedger, training: dict[str, Any]) -> None:
    """Write a resumable checkpoint into `folder` (rank 0 only)."""
    torch.save(training, folder / TRAINING_FILE)
    (folder / LEDGER_FILE).write_text(json.dumps(json_safe(ledger.to_dict()), sort_keys=True))
    (folder / CONFIG_FILE).write_text(config.to_json())


def write_outcome(folder: Path, outcome: Outcome) -> None:
    """Write the final checkpoint: the trial's result and the per-rank summaries."""
    with open(folder / OUTCOME_FILE, "wb") as f:
        pickle.dump(outcome, f)
    (folder / LEDGER_FILE).write_text(json.dumps(json_safe(outcome.trial.ledger.to_dict()), sort_keys=True))
    (folder / CONFIG_FILE).write_text(outcome.trial.config.to_json())


def read_saved(folder: Path) -> Saved:
    """Read a checkpoint directory written by write_training or write_outcome."""
    saved = Saved(config_json=(folder / CONFIG_FILE).read_text())
    if (folder / OUTCOME_FILE).exists():
        with open(folder / OUTCOME_FILE, "rb") as f:
            saved.outcome = pickle.load(f)
    if (folder / TRAINING_FILE).exists():
        saved.training = torch.load(folder / TRAINING_FILE, map_location="cpu", weights_only=False)
    return saved


def read_checkpoint(checkpoint) -> Saved | None:
    """Read a ray.train.Checkpoint (None when there is none: a fresh start)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return read_saved(Path(folder))


def check_same_trial(config_json: str, config: TrialConfig, *, where: str) -> None:
    """Refuse to resume a run whose checkpoints belong to another trial config."""
    if json.loads(config_json) != json.loads(config.to_json()):
        raise ConfigError(f"{where} holds checkpoints of a different trial config; "
                         "pass a new name (or storage_path) for this trial")
