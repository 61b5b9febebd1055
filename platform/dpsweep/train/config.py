"""The resolved configuration of one trial: typed, validated once, saved with every result.

Keys are flat and named like the `dpsweep train` flags (with underscores), so a YAML
file, the CLI and a results-store row all speak the same language.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from dpsweep.errors import ConfigError

GradSampleMode = Literal["hooks", "ghost"]
Clipping = Literal["flat", "per_layer"]


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides one trial's outcome (together with the data on disk)."""

    # data
    dataset_format: str = "mimic-cxr"
    data_path: str = ""
    sections: str = "both"
    uncertain_policy: str = "zeros"
    val_fraction: float = 0.2
    # model
    model: str = "default"
    pooling: str = "mean"
    lora_targets: tuple[str, ...] | None = None
    rank: int = 8
    lora_layers: int | None = None  # adapt only the top N layers (None: all)
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    head_bias_init: float = -2.0
    backbone_dropout: bool = False  # dropout inside the frozen backbone (off: better under DP)
    # With lora_layers, compute the frozen lower layers once per trial (same results, faster)
    prefix_cache: bool = True
    # privacy: epsilon is the target budget; math.inf trains without DP
    epsilon: float = 8.0
    delta: float = 1e-5
    accountant: str = "prv"
    clip: float = 1.0  # C: bound on one example's whole gradient (the sensitivity the noise is scaled to)
    # "per_layer": each trainable tensor is clipped on its own, the head's tensors sharing
    # head_clip_share of C² and the adapters' the rest (see train.loop.clipping_arguments)
    clipping: Clipping = "per_layer"
    head_clip_share: float = 0.5
    sigma: float | None = None  # None: calibrate sigma so that max_epochs spends the budget
    grad_sample_mode: GradSampleMode = "hooks"
    # optimisation
    lr: float = 5e-3  # LoRA adapters
    # The head reads pooled features of small norm (about 3 for MiniLM), so under Adam it
    # needs a far larger step than the adapters; one shared lr leaves it near its start.
    head_lr: float = 0.3
    weight_decay: float = 0.0
    batch_size: int = 64  # expected (logical) batch size; q = 1 / ceil(n_train / batch_size)
    physical_batch_size: int = 32  # memory cap per forward/backward (Opacus BatchMemoryManager)
    max_epochs: float = 3.0
    max_length: int = 128
    lr_schedule: Literal["constant", "linear"] = "linear"
    seed: int = 0
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self)

    @property
    def private(self) -> bool:
        return not math.isinf(self.epsilon)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict (inf as the string "inf")."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and math.isinf(value):
                out[key] = "inf"
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def override(self, **changes: Any) -> TrialConfig:
        """A copy with `changes` applied (None values are ignored), re-validated."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "config") -> TrialConfig:
        """Build from a dict (a YAML file's content), refusing unknown keys by name."""
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                near = [_ALIASES[key]] if key in _ALIASES else difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(known)}"
                raise ConfigError(f"{source}: unknown key '{key}'{hint}")
        return cls(**{k: _coerce(k, v, source) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrialConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML file to --config")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
        return cls.from_mapping(data, source=str(path))


# Names users bring from other tools, pointed at ours in the "unknown key" error.
_ALIASES = {"learning_rate": "lr", "noise_multiplier": "sigma", "max_grad_norm": "clip",
            "target_epsilon": "epsilon", "target_delta": "delta", "lora_rank": "rank", "r": "rank",
            "epochs": "max_epochs", "max_seq_length": "max_length", "model_name_or_path": "model"}

_FLOATS = {"val_fraction", "lora_alpha", "lora_dropout", "head_bias_init", "head_clip_share", "epsilon", "delta",
           "clip", "sigma", "lr", "head_lr", "weight_decay", "max_epochs"}
_INTS = {"rank", "lora_layers", "batch_size", "physical_batch_size", "max_length", "seed", "eval_batch_size"}


def _coerce(key: str, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        if key in _FLOATS:
            return float(value)  # accepts "inf", 1e-5, "1e-5"
        if key in _INTS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}") from None
    if key == "lora_targets":
        return tuple(value) if isinstance(value, (list, tuple)) else (str(value),)
    return value


def _check(c: TrialConfig) -> None:
    rules = [
        (c.epsilon > 0 and not math.isnan(c.epsilon), "epsilon", c.epsilon,
         "pass a positive budget such as --epsilon 8, or --epsilon inf for no DP"),
        (0 < c.delta < 1, "delta", c.delta, "pass a delta below 1/n_train, e.g. --delta 1e-5"),
        (c.clip > 0, "clip", c.clip, "pass a positive max grad norm, e.g. --clip 1.0"),
        (c.sigma is None or c.sigma > 0, "sigma", c.sigma,
         "pass a positive noise multiplier, e.g. --sigma 1.0, or omit it to calibrate"),
        (isinstance(c.rank, int) and c.rank >= 1, "rank", c.rank, "pass an integer >= 1, e.g. --rank 8"),
        (c.lr > 0, "lr", c.lr, "pass a positive learning rate, e.g. --lr 2e-3"),
        (c.head_lr > 0, "head_lr", c.head_lr, "pass a positive learning rate, e.g. --head-lr 0.1"),
        (c.batch_size >= 1, "batch_size", c.batch_size, "pass an integer >= 1"),
        (c.physical_batch_size >= 1, "physical_batch_size", c.physical_batch_size, "pass an integer >= 1"),
        (c.max_epochs > 0, "max_epochs", c.max_epochs, "pass a positive number of epochs"),
        (8 <= c.max_length <= 8192, "max_length", c.max_length, "pass a token length such as 128 or 256"),
        (c.grad_sample_mode in ("hooks", "ghost"), "grad_sample_mode", c.grad_sample_mode,
         "use 'hooks' (default) or 'ghost'"),
        (c.clipping in ("flat", "per_layer"), "clipping", c.clipping, "use 'per_layer' (default) or 'flat'"),
        (0 < c.head_clip_share < 1, "head_clip_share", c.head_clip_share,
         "pass the head's share of C² strictly between 0 and 1, e.g. --head-clip-share 0.5"),
        (c.grad_sample_mode != "ghost" or c.clipping == "flat", "clipping", c.clipping,
         "ghost clipping bounds the whole gradient at once: pass --clipping flat with --grad-sample-mode ghost"),
        (c.accountant in ("prv", "rdp"), "accountant", c.accountant,
         "use 'prv' (default) or 'rdp'; 'gdp' can under-report epsilon and is refused for budgets"),
        (c.lr_schedule in ("constant", "linear"), "lr_schedule", c.lr_schedule, "use 'constant' or 'linear'"),
        (c.pooling in ("mean", "cls", "last"), "pooling", c.pooling, "use 'mean', 'cls' or 'last'"),
        (c.sections in ("findings", "impression", "both"), "sections", c.sections,
         "use 'findings', 'impression' or 'both'"),
        (c.uncertain_policy in ("zeros", "ones", "ignore"), "uncertain_policy", c.uncertain_policy,
         "use 'zeros', 'ones' or 'ignore'"),
    ]
    for ok, key, value, fix in rules:
        if not ok:
            raise ConfigError(f"{key} = {value!r} is out of range; {fix}")
