"""What a distributed trial's checkpoints hold, and how they are written and read back.

A checkpoint directory holds (safetensors and JSON only: no pickle, so a checkpoint that
someone else wrote, e.g. in a shared s3:// runs dir, cannot run code when it is read):

- ``trial_config.json``: the resolved trial config. It is read and compared with the
  trial first, before any other file is parsed, so a resume never mixes trials;
- ``training.safetensors``: every tensor of the training state: trainable weights (LoRA +
  head), optimizer state and every rank's random-number state;
- ``training.json``: the rest of the training state: steps taken, LR-schedule state,
  optimizer hyperparameters, training seconds and, for DP trials, the Opacus accountant's
  (σ, q, steps) history, so a resumed trial continues exactly where the checkpoint left
  it and its ε counts the steps from before the failure. Tensors appear there as
  references into the safetensors file;
- ``ledger.json``: the privacy ledger of the steps taken so far (readable without torch);
- ``outcome.json``: only in the final checkpoint: the TrialResult and per-rank summaries.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from dpsweep.console import from_json_safe, json_safe
from dpsweep.errors import ConfigError
from dpsweep.privacy import PrivacyLedger
from dpsweep.settings import TrialConfig
from dpsweep.train.metrics import Metrics
from dpsweep.train.record import TrialResult

TRAINING_FILE = "training.json"
TENSORS_FILE = "training.safetensors"
LEDGER_FILE = "ledger.json"
CONFIG_FILE = "trial_config.json"
OUTCOME_FILE = "outcome.json"
# Written by dpsweep before checkpoints became safetensors/JSON; never unpickled.
PICKLED_FILES = ("training.pt", "outcome.pkl")
_METRICS = ("val", "val_tuned", "test", "test_tuned")
_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")


@dataclass(frozen=True)
class RankSummary:
    """How one rank ended; the ranks of a sound trial agree on all but rank, node_id and frozen_cache."""

    rank: int
    node_id: str
    steps: int
    epsilon: float  # from this rank's own accountant history (inf without DP)
    weights_sha256: str  # of the trained weights (LoRA + head), bit for bit
    resumed_from_steps: int  # steps restored from a checkpoint when this attempt began (0: fresh)
    frozen_cache: str = ""  # where its frozen-layer states came from (train.loop.prefix_origin)


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


# ---- writing ------------------------------------------------------------------------------

def write_training(folder: Path, *, config: TrialConfig, ledger: PrivacyLedger, training: dict[str, Any]) -> None:
    """Write a resumable checkpoint into `folder` (rank 0 only)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(training, tensors)
    save_file(tensors, str(folder / TENSORS_FILE))
    (folder / TRAINING_FILE).write_text(json.dumps(tree, allow_nan=False))
    (folder / LEDGER_FILE).write_text(json.dumps(json_safe(ledger.to_dict()), sort_keys=True))
    (folder / CONFIG_FILE).write_text(config.to_json())


def write_outcome(folder: Path, outcome: Outcome) -> None:
    """Write the final checkpoint: the trial's result and the per-rank summaries."""
    (folder / OUTCOME_FILE).write_text(json.dumps(outcome_to_dict(outcome), allow_nan=False, default=_number))
    (folder / LEDGER_FILE).write_text(json.dumps(json_safe(outcome.trial.ledger.to_dict()), sort_keys=True))
    (folder / CONFIG_FILE).write_text(outcome.trial.config.to_json())


# ---- reading ------------------------------------------------------------------------------

def read_saved(folder: Path, *, config: TrialConfig, where: str) -> Saved:
    """Read a checkpoint directory written by write_training or write_outcome.

    The trial config is checked against `config` first (ConfigError naming `where` when it
    differs); only then are the outcome and the tensors read. Pickled checkpoints of older
    dpsweep versions are refused, never loaded.
    """
    pickled = [name for name in PICKLED_FILES if (folder / name).exists()]
    if pickled:
        raise ConfigError(f"{where} holds a pickled checkpoint ({pickled[0]}) of an older dpsweep, which is "
                          "never loaded (unpickling can run code); start the trial under a new name")
    try:
        config_json = (folder / CONFIG_FILE).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} holds a checkpoint without a readable {CONFIG_FILE} ({exc}); "
                          "start the trial under a new name") from None
    check_same_trial(config_json, config, where=where)
    saved = Saved(config_json=config_json)
    if (folder / OUTCOME_FILE).exists():
        saved.outcome = outcome_from_dict(_read_json(folder / OUTCOME_FILE, where), where=where)
        check_same_trial(saved.outcome.trial.config.to_json(), config, where=where)
    if (folder / TRAINING_FILE).exists():
        saved.training = _read_training(folder, where)
    return saved


def _read_training(folder: Path, where: str) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tree = _read_json(folder / TRAINING_FILE, where)
    try:
        training = _decode(tree, load_file(str(folder / TENSORS_FILE), device="cpu"), where=where)
    except (OSError, SafetensorError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: the checkpoint's training state is unreadable ({type(exc).__name__}); "
                          "start the trial under a new name") from None
    if not isinstance(training, dict):
        raise ConfigError(f"{where}: {TRAINING_FILE} does not hold a training state; start the trial under a new name")
    return training


def read_checkpoint(checkpoint, *, config: TrialConfig, where: str) -> Saved | None:
    """Read a ray.train.Checkpoint of the trial `config` (None when there is none: a fresh start)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return read_saved(Path(folder), config=config, where=where)


def check_same_trial(config_json: str, config: TrialConfig, *, where: str) -> None:
    """Refuse to resume a run whose checkpoints belong to another trial config."""
    try:
        stored = json.loads(config_json)
    except ValueError:
        stored = None
    if stored != json.loads(config.to_json()):
        raise ConfigError(f"{where} holds checkpoints of a different trial config; "
                         "pass a new name (or storage_path) for this trial")


def _read_json(path: Path, where: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: checkpoint file {path.name} is unreadable ({type(exc).__name__}); "
                          "start the trial under a new name") from None


# ---- the outcome as JSON ------------------------------------------------------------------

def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """The outcome as a JSON-safe dict (dpsweep's convention: inf as "inf")."""
    t = outcome.trial
    trial = {f.name: getattr(t, f.name) for f in fields(t)}
    trial.update(config=t.config.to_dict(), label_names=list(t.label_names),
                 ledger=None if t.ledger is None else t.ledger.to_dict(),
                 **{name: None if getattr(t, name) is None else asdict(getattr(t, name)) for name in _METRICS})
    return json_safe({"trial": trial, "ranks": [asdict(r) for r in outcome.ranks],
                      "first_started_at": outcome.first_started_at})


def outcome_from_dict(data: Any, *, where: str = "checkpoint") -> Outcome:
    """Inverse of outcome_to_dict; ConfigError naming `where` when the data does not fit."""
    try:
        data = from_json_safe(data)
        trial = dict(data["trial"])
        trial["config"] = TrialConfig.from_mapping(trial["config"], source=f"{where} {OUTCOME_FILE}")
        trial["label_names"] = tuple(trial["label_names"])
        if trial["ledger"] is not None:
            trial["ledger"] = PrivacyLedger.from_dict(trial["ledger"])
        for name in _METRICS:
            if trial[name] is not None:
                trial[name] = Metrics(**trial[name])
        return Outcome(trial=TrialResult(**trial), ranks=[RankSummary(**r) for r in data["ranks"]],
                       first_started_at=float(data["first_started_at"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: {OUTCOME_FILE} does not hold a trial outcome ({type(exc).__name__}: {exc}); "
                          "start the trial under a new name") from None


def _number(value: Any) -> Any:
    """json.dumps fallback for numpy scalars."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return json_safe(float(value))
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# ---- training state: tensors apart, the rest as tagged JSON ---------------------------------
# JSON has no tuples, no non-string keys and no infinities; torch state dicts use all three
# (Adam's betas, optimizer state keyed by parameter index). They are tagged so that what is
# read back equals what was written.

def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()  # own storage: safetensors refuses shared
        return {"__tensor__": key}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"checkpoint state holds a {type(value).__name__}, which has no safe format; "
                    "keep tensors, numbers, strings, lists, tuples and dicts in state_dict()")


def _decode(value: Any, tensors: dict[str, torch.Tensor], *, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, where=where) for v in value]
    if not isinstance(value, dict):
        return value
    tag = next(iter(value), None) if len(value) == 1 else None
    if tag not in _TAGS:
        if any(k.startswith("__") for k in value):
            raise ConfigError(f"{where}: {TRAINING_FILE} holds an unknown tag; start the trial under a new name")
        return {k: _decode(v, tensors, where=where) for k, v in value.items()}
    inner = value[tag]
    if tag == "__tensor__":
        if inner not in tensors:
            raise ConfigError(f"{where}: {TRAINING_FILE} names a tensor {TENSORS_FILE} lacks; "
                              "start the trial under a new name")
        return tensors[inner]
    if tag == "__float__":
        return float(inner) if inner in ("inf", "-inf", "nan") else _bad_tag(tag, where)
    if tag == "__tuple__":
        return tuple(_decode(v, tensors, where=where) for v in inner)
    return {_decode(k, tensors, where=where): _decode(v, tensors, where=where) for k, v in inner}


def _bad_tag(tag: str, where: str) -> Any:
    raise ConfigError(f"{where}: {TRAINING_FILE} holds a malformed {tag}; start the trial under a new name")
