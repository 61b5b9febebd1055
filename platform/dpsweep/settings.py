"""A trial's settings, declared once: type, default, help, bounds, YAML section, flag, column.

`TrialConfig` is the one place a setting is declared (in the spirit of peft's
`LoraConfig`): each field carries a :class:`Setting` in its metadata, and everything else
is derived from it:

- `dpsweep train` flags (`--kebab-name`, with help and choices): :func:`add_setting_flags`;
- YAML routing of search-space sections (`dataset.format` -> `dataset_format`):
  :func:`yaml_home`;
- which settings a sweep may search, and which the non-private baseline searches:
  :func:`searchable`;
- type coercion and bounds checks: :func:`coerce_setting`, `TrialConfig.__post_init__`;
- the results store's hyperparameter columns: :func:`store_columns`.

Adding a searchable setting is one field here (plus its use in the training code).
Torch-free and Ray-free: imported by the CLI parser, the sweep spec and the results schema.
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from dpsweep.console import json_safe
from dpsweep.errors import ConfigError

Section = Literal["dataset", "model", "privacy", "public_data", "training"]
Search = Literal["no", "dp", "all"]  # dp: searched under an ε target only; all: the baseline too

Sections = Literal["findings", "impression", "both"]
UncertainPolicy = Literal["zeros", "ones", "ignore"]
Pooling = Literal["mean", "cls", "last"]
AccountantName = Literal["prv", "rdp"]  # GDP can under-report ε: refused for budgets
GradSampleMode = Literal["hooks", "ghost"]
Clipping = Literal["flat", "per_layer"]
LrSchedule = Literal["constant", "linear"]
PrivacyUnit = Literal["record", "patient"]
Noise = Literal["secure", "reproducible"]
# lora: LoRA adapters + head; bitfit: the backbone's biases + head; head: the head alone on
# frozen pooled features; linear: a linear model on TF-IDF features of a public vocabulary
Method = Literal["lora", "bitfit", "head", "linear"]

SEED_MAX = 2**32 - 1  # numpy's seeding limit
EPSILON_MAX = 100.0  # finite privacy budgets above this protect nothing and exhaust the accountants


@dataclass(frozen=True)
class Setting:
    """What the rest of dpsweep needs to know about one TrialConfig field."""

    help: str
    section: Section = "training"
    yaml_key: str | None = None  # its key inside `section` when it differs from the field name
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low < value (else low <= value)
    high_open: bool = False
    allow_inf: bool = False  # +inf is a legal value (ε = inf: non-private)
    search: Search = "no"
    column: bool = True  # a results-store column of its own (ledger settings have theirs)
    flag: bool = True  # a `dpsweep train` flag

    def bounds_text(self) -> str:
        lo = "" if self.low is None else f"{self.low:g} {'<' if self.low_open else '<='} "
        hi = "" if self.high is None else f" {'<' if self.high_open else '<='} {self.high:g}"
        return f"{lo}value{hi}"


def _s(default: Any, help: str, **meta: Any) -> Any:  # noqa: A002 - mirrors argparse's name
    return field(default=default, metadata={"setting": Setting(help=help, **meta)})


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides one trial's outcome (together with the data on disk)."""

    # data
    dataset_format: str = _s("mimic-cxr", "reader of the data set: mimic-cxr, ct-rate or csv",
                             section="dataset", yaml_key="format", column=False)  # the store's identity column
    data_path: str = _s("", "root folder of the data set", section="dataset", yaml_key="path", column=False)
    sections: Sections = _s("both", "report sections that become the text", section="dataset")
    uncertain_policy: UncertainPolicy = _s("zeros", "MIMIC-CXR uncertain (-1) labels become", section="dataset")
    val_fraction: float = _s(0.2, "share of training rows carved out as validation (formats without one)",
                             section="dataset", low=0, high=0.9, low_open=True, high_open=True)
    max_length: int = _s(128, "max tokens per report", section="dataset", low=8, high=8192)
    # csv only: name the columns instead of letting the reader guess (columns not named are ignored)
    text_column: str | None = _s(None, "the CSV column holding the report text (csv format; default: detected)",
                                 section="dataset", column=False)
    label_columns: tuple[str, ...] | None = _s(
        None, "the CSV's 0/1 label columns (csv format; default: every column that is not the text or an id)",
        section="dataset", column=False)
    # model
    model: str = _s("default", "'default' (embedded MiniLM) or a local model folder", section="model",
                    yaml_key="path", column=False)
    pooling: Pooling = _s("mean", "how token states become one vector", section="model")
    method: Method = _s("lora", "what training updates: lora (adapters + head), bitfit (biases + head), head "
                        "(head on frozen pooled features), linear (linear model on TF-IDF of the public corpus' "
                        "vocabulary; needs public_data)", section="model", search="all")
    linear_dims: int = _s(48, "linear method: TF-IDF projected on the public corpus' top N principal "
                          "directions (0: the raw TF-IDF)", section="model", low=0, high=100_000)
    lora_targets: tuple[str, ...] | None = _s(None, "module names LoRA wraps (default: by architecture)",
                                              section="model", flag=False, column=False)
    rank: int = _s(8, "LoRA rank r", low=1, high=1024, search="all")
    lora_layers: int | None = _s(None, "adapt only the top N transformer layers (default: all)",
                                 section="model", low=1, high=1000)
    lora_alpha: float = _s(16.0, "LoRA scaling alpha", low=0, high=1e6, low_open=True, search="dp")
    lora_dropout: float = _s(0.0, "LoRA dropout probability", low=0, high=1, high_open=True, search="dp")
    # A fixed prior logit for every label, not fitted to the data: it spends no privacy
    head_bias_init: float = _s(-2.0, "initial head bias (a fixed prior logit)", low=-50, high=50)
    backbone_dropout: bool = _s(False, "dropout inside the frozen backbone (off: better under DP)",
                                column=False)
    prefix_cache: bool = _s(True, "compute the frozen layers (below lora_layers; all of them for method head) once, "
                            "per sweep in a sweep, else per trial",
                            column=False)
    # privacy: epsilon is the target budget; inf trains without DP
    # The high bound keeps the accountants within memory: dp-accounting's PLD check needs
    # about 1 GB at ε = 100 and runs out of memory beyond a few hundred (ε = 1e12: σ = 0.01)
    epsilon: float = _s(8.0, "privacy budget ε (a number up to 100, or inf for no DP)", section="privacy",
                        low=0, high=EPSILON_MAX, low_open=True, allow_inf=True, column=False)
    delta: float = _s(1e-5, "δ, below 1/n_train", section="privacy", low=0, high=1, low_open=True,
                      high_open=True, column=False)
    accountant: AccountantName = _s("prv", "privacy accountant", section="privacy", column=False)
    # record: ε protects one report; patient: one patient (all their reports, summed and clipped together)
    privacy_unit: PrivacyUnit = _s("record", "what ε protects: one report, or one patient (all their reports)",
                                   section="privacy", yaml_key="unit", column=False)  # a ledger column
    max_reports_per_patient: int = _s(8, "patient unit: reports used per patient (the rest are not trained on)",
                                      section="privacy", low=1, high=10_000, column=False)
    # secure: DP noise and Poisson sampling from generators seeded by the operating system and
    # never stored; reproducible: seeded from `seed`, so anyone holding the row can replay them
    noise: Noise = _s("secure", "DP noise and sampling: secure (OS-seeded, never stored) or reproducible "
                      "(from seed: NOT private, for debugging)", section="privacy", column=False)
    clip: float = _s(1.0, "per-sample gradient clipping norm C", low=0, high=1e6, low_open=True,
                     search="dp", column=False)
    # per_layer: each trainable tensor clipped on its own, the head sharing head_clip_share of
    # C² and the adapters the rest (see train.loop.clipping_arguments)
    clipping: Clipping = _s("per_layer", "per_layer (head and adapters clipped apart) or flat")
    head_clip_share: float = _s(0.5, "per_layer: the head's share of C²", low=0, high=1, low_open=True,
                                high_open=True, search="dp")
    sigma: float | None = _s(None, "noise multiplier σ; omit to calibrate σ for max_epochs", low=1e-3,
                             high=1e4, search="dp", column=False)
    grad_sample_mode: GradSampleMode = _s("hooks", "Opacus per-sample gradients: hooks or ghost")
    # optimisation
    lr: float = _s(5e-3, "learning rate of the LoRA adapters", low=0, high=100, low_open=True, search="all")
    # The head reads pooled features of small norm (about 3 for MiniLM), so under Adam it
    # needs a far larger step than the adapters; one shared lr leaves it near its start.
    head_lr: float = _s(0.3, "learning rate of the classification head (method linear: of the whole model)",
                        low=0, high=100, low_open=True, search="all")
    weight_decay: float = _s(0.0, "AdamW weight decay", low=0, high=10)
    batch_size: int = _s(64, "expected (logical) batch size; q = 1 / ceil(n_train / batch_size)", low=1,
                         high=10**7, search="dp")
    physical_batch_size: int = _s(32, "memory cap per forward/backward pass (method linear: at least 1024, "
                                  "its rows are small)", low=1, high=10**6)
    max_epochs: float = _s(3.0, "cap on epochs (the budget may stop training earlier)", low=0, high=10**5,
                           low_open=True, search="dp")
    max_steps: int | None = _s(None, "cap on optimizer steps (default: none beyond max_epochs)", low=1,
                               high=10**9)
    lr_schedule: LrSchedule = _s("linear", "learning-rate schedule")
    seed: int = _s(0, "seed of initialisation, data split and everything non-private", low=0, high=SEED_MAX)
    eval_batch_size: int = _s(64, "batch size of evaluation", low=1, high=10**6, column=False)
    full_batch: bool = _s(False, "every step takes every training unit (q = 1: full-batch DP gradient "
                          "descent); batch_size is then ignored")
    # A fixed constant, not fitted to the data (a class prior from the private labels would leak)
    pos_weight: float = _s(1.0, "weight of a positive label in the loss (a fixed constant)", low=0, high=1000,
                           low_open=True, search="all")
    ema: float = _s(0.0, "decay of an exponential moving average of the trained weights, which becomes the "
                    "model (0: off); post-processing, free under DP", low=0, high=1, high_open=True,
                    search="all")
    # public data: costs no ε; vocabulary, centring and a non-private warm start come from it
    public_format: str | None = _s(None, "reader of a public corpus (mimic-cxr, ct-rate or csv): vocabulary, "
                                   "centring and warm start; costs no ε", section="public_data",
                                   yaml_key="format")
    public_path: str | None = _s(None, "folder of the public corpus", section="public_data", yaml_key="path")
    public_warm_steps: int = _s(0, "non-private steps on the public corpus before training on the private "
                                "data (warm start; costs no ε)", low=0, high=10**6, search="all")
    public_warm_batch_size: int | None = _s(None, "public reports per warm-start step (default: batch_size; "
                                            "1024 for method linear)", low=1, high=10**7, search="all")
    public_warm_lr: float | None = _s(None, "learning rate of the adapters in the warm start (default: lr); set, it "
                                      "lets a sweep that searches lr compute the warm start once",
                                      low=0, high=100, low_open=True, search="all")

    def __post_init__(self) -> None:
        for f in fields(self):
            check_setting(f.name, getattr(self, f.name))
        _check_cross_field(self)

    @property
    def private(self) -> bool:
        return not math.isinf(self.epsilon)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict (inf as the string "inf", tuples as lists)."""
        return json_safe(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def override(self, *, source: str = "config", **changes: Any) -> TrialConfig:
        """A copy with `changes` applied (None values are ignored), coerced and re-validated."""
        for key in changes:
            if key not in SETTINGS:
                raise ConfigError(f"{source}: unknown key '{key}'{unknown_key_hint(key)}")
        return replace(self, **{k: coerce_setting(k, v, source=source) for k, v in changes.items()
                                if v is not None})

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "config") -> TrialConfig:
        """Build from a dict (a YAML file's content), refusing unknown keys by name."""
        for key in data:
            if key not in SETTINGS:
                raise ConfigError(f"{source}: unknown key '{key}'{unknown_key_hint(key)}")
        return cls(**{k: coerce_setting(k, v, source=source) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrialConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML file to --config")
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
        return cls.from_mapping(data, source=str(path))


# ---- derived views ------------------------------------------------------------------------

def _declared() -> dict[str, tuple[Field, Setting, Any]]:
    hints = typing.get_type_hints(TrialConfig)
    return {f.name: (f, f.metadata["setting"], hints[f.name]) for f in fields(TrialConfig)}


_DECLARED = _declared()
SETTINGS: dict[str, Setting] = {name: s for name, (_, s, _) in _DECLARED.items()}
"""Setting name -> its declaration, in field order."""


def setting_type(name: str) -> Any:
    """The annotated type of a setting, None-ness removed (int | None -> int)."""
    kind = _DECLARED[name][2]
    if get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    return kind


def nullable(name: str) -> bool:
    kind = _DECLARED[name][2]
    return get_origin(kind) in (typing.Union, types.UnionType) and type(None) in get_args(kind)


def choices(name: str) -> tuple[str, ...] | None:
    """The closed set of values of a Literal setting, or None."""
    kind = setting_type(name)
    return tuple(get_args(kind)) if get_origin(kind) is Literal else None


def default(name: str) -> Any:
    return _DECLARED[name][0].default


def searchable(*, private: bool = True) -> tuple[str, ...]:
    """Settings a search space may search (the non-private baseline searches fewer)."""
    wanted = ("dp", "all") if private else ("all",)
    return tuple(n for n, s in SETTINGS.items() if s.search in wanted)


def yaml_home(name: str) -> tuple[Section, str]:
    """(section, key) where a setting lives in a search-space file."""
    s = SETTINGS[name]
    return s.section, s.yaml_key or name


def store_columns() -> tuple[tuple[str, str, str], ...]:
    """(name, kind, help) of the settings that are store columns; kind: float, int or string."""
    out = []
    for name, s in SETTINGS.items():
        if not s.column:
            continue
        kind = setting_type(name)
        out.append((name, "float" if kind is float else "int" if kind is int else "bool" if kind is bool
                    else "string", s.help))
    return tuple(out)


def unknown_key_hint(key: Any) -> str:
    near = [_ALIASES[key]] if key in _ALIASES else difflib.get_close_matches(str(key), list(SETTINGS), n=1)
    return f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(SETTINGS)}"


# Names users bring from other tools, pointed at ours in the "unknown key" error.
_ALIASES = {"learning_rate": "lr", "noise_multiplier": "sigma", "max_grad_norm": "clip",
            "target_epsilon": "epsilon", "target_delta": "delta", "lora_rank": "rank", "r": "rank",
            "epochs": "max_epochs", "max_seq_length": "max_length", "model_name_or_path": "model"}


# ---- coercion and checks --------------------------------------------------------------------

def coerce_setting(name: str, value: Any, *, source: str = "config") -> Any:
    """A YAML/CLI/Tune value as the setting's type; ConfigError naming source, key and fix."""
    if value is None:
        return None
    kind = setting_type(name)
    try:
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)  # accepts "inf", 1e-5, "1e-5"
        if kind is int:
            return _to_int(value)
        if kind is bool:
            return _to_bool(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{source}: '{name}' must be {_kind_text(kind)}, got {value!r}") from None
    if get_origin(kind) is tuple:
        return _to_names(value)
    return value


def _to_names(value: Any) -> tuple[str, ...]:
    """A YAML list, a tuple or a comma-separated string ("a,b,c") as a tuple of names."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(v).strip() for v in items)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float) and not value.is_integer():
        raise ValueError
    if isinstance(value, str):
        number = float(value)
        if not number.is_integer():
            raise ValueError
        return int(number)
    return int(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError


def _kind_text(kind: Any) -> str:
    return {float: "a number", int: "an integer", bool: "true or false"}.get(kind, "a value")


def check_setting(name: str, value: Any) -> None:
    """Raise ConfigError (rule, value, fix) when `value` is not a legal value of `name`."""
    s = SETTINGS[name]
    if value is None:
        if nullable(name):
            return
        raise ConfigError(f"{name} must be set, got None; pass a value (default {default(name)!r})")
    kind, options = setting_type(name), choices(name)
    if options is not None:
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}; "
                              f"pass --{flag_name(name)} {options[0]}")
        return
    if kind in (float, int):
        _check_number(name, s, kind, value)
    elif kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif kind is str and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    elif get_origin(kind) is tuple:
        _check_names(name, value)


def _check_names(name: str, value: Any) -> None:
    fix = f"pass --{flag_name(name)} a,b,c (or a YAML list), each name once"
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a tuple of names, got {value!r}; {fix}")
    if not value or not all(v.strip() for v in value):
        raise ConfigError(f"{name} must hold non-empty names, got {value!r}; {fix}, or leave it unset")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise ConfigError(f"{name} names {', '.join(map(repr, twice))} more than once; {fix}")


def _check_number(name: str, s: Setting, kind: Any, value: Any) -> None:
    fix = f"pass --{flag_name(name)} with {s.bounds_text()}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be {_kind_text(kind)}, got {value!r}; {fix}")
    if kind is int and not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}; {fix}")
    if math.isnan(value) or (math.isinf(value) and not (s.allow_inf and value > 0)):
        extra = " (or inf for no DP)" if s.allow_inf else ""
        raise ConfigError(f"{name} must be a finite number{extra}, got {value!r}; {fix}")
    too_low = s.low is not None and (value <= s.low if s.low_open else value < s.low)
    too_high = (s.high is not None and not math.isinf(value)
                and (value >= s.high if s.high_open else value > s.high))
    if too_low or too_high:
        raise ConfigError(f"{name} = {value!r} is out of range: {s.bounds_text()} must hold; {fix}")


def _check_cross_field(c: TrialConfig) -> None:
    from dpsweep.data.formats import FORMATS

    if c.dataset_format not in FORMATS:
        raise ConfigError(f"dataset_format must be one of {', '.join(FORMATS)}, got {c.dataset_format!r}; "
                          "pass --dataset-format mimic-cxr, ct-rate or csv")
    _check_csv_columns(c)
    _check_public_data(c)
    if c.privacy_unit == "patient" and c.grad_sample_mode == "ghost":
        raise ConfigError("privacy_unit = 'patient' sums each patient's per-report gradients, which ghost "
                          "clipping never forms; pass --grad-sample-mode hooks with --privacy-unit patient")
    if c.grad_sample_mode == "ghost" and c.clipping != "flat":
        raise ConfigError(f"clipping = {c.clipping!r} does not work with grad_sample_mode 'ghost' (ghost "
                          "clipping bounds the whole gradient at once); pass --clipping flat with "
                          "--grad-sample-mode ghost")


def _check_public_data(c: TrialConfig) -> None:
    """public_format and public_path come together; linear and warm starts need them."""
    from dpsweep.data.formats import FORMATS

    if (c.public_format is None) != (c.public_path is None):
        raise ConfigError("public_data needs both format and path, got "
                          f"format={c.public_format!r}, path={c.public_path!r}; pass --public-format and "
                          "--public-path together (YAML: public_data: {format: ct-rate, path: data/synth-ct})")
    if c.public_format is not None and c.public_format not in FORMATS:
        raise ConfigError(f"public_format must be one of {', '.join(FORMATS)}, got {c.public_format!r}; "
                          "pass --public-format mimic-cxr, ct-rate or csv")
    needs = ("method = 'linear' (its vocabulary)" if c.method == "linear" else
             "public_warm_steps > 0" if c.public_warm_steps else None)
    if needs and c.public_path is None:
        raise ConfigError(f"{needs} needs a public corpus, but public_data is not set; pass --public-format "
                          "and --public-path (e.g. a corpus written by `dpsweep data synth`)")


def _check_csv_columns(c: TrialConfig) -> None:
    """text_column / label_columns name CSV columns: csv format only, a text that is not a label."""
    named = [n for n in ("text_column", "label_columns") if getattr(c, n) is not None]
    if named and c.dataset_format != "csv":
        raise ConfigError(f"{named[0]} names a column of the csv format, but dataset_format is "
                          f"{c.dataset_format!r}; drop --{flag_name(named[0])} or pass --dataset-format csv")
    if c.text_column is not None and not c.text_column.strip():
        raise ConfigError(f"text_column must be a column name, got {c.text_column!r}; pass --text-column "
                          "NAME or leave it unset to detect the text column")
    if c.text_column is not None and c.label_columns and c.text_column.strip() in c.label_columns:
        raise ConfigError(f"text_column {c.text_column!r} is also one of label_columns; name the text "
                          "column once, in --text-column only")


def flag_name(name: str) -> str:
    return name.replace("_", "-")


# ---- YAML ----------------------------------------------------------------------------

class _UniqueKeyLoader:
    """A yaml SafeLoader that refuses a key given twice in one mapping (the second would win)."""

    @staticmethod
    def build():
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def construct_mapping(loader, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = loader.construct_object(key_node, deep=deep)
                if key in seen:
                    raise ConfigError(f"line {key_node.start_mark.line + 1}: key '{key}' is given twice; "
                                      "keep one")
                seen.add(key)
            return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

        Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
        return Loader


def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely: one-line errors for bad UTF-8, bad syntax and duplicate keys."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader.build())  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None


# ---- CLI -------------------------------------------------------------------------------------

def add_setting_flags(parser: Any, *, only: tuple[str, ...] | None = None) -> None:
    """Add one `--kebab-name` flag per setting (or per setting in `only`) to an argparse parser
    (dest: the setting name).

    Values arrive as strings and are coerced by TrialConfig, so the CLI, YAML and Tune share
    one set of rules and messages.
    """
    for name, s in SETTINGS.items():
        if not s.flag or (only is not None and name not in only):
            continue
        options = choices(name)
        kind = setting_type(name)
        text = s.help + (f" ({' | '.join(options)})" if options else "")
        if default(name) not in (None, ""):
            text += f"; default {default(name)}"
        metavar = "{" + ",".join(options) + "}" if options else ("N" if kind in (int, float) else None)
        if get_origin(kind) is tuple:
            metavar = "NAME[,NAME...]"  # comma-separated, coerced by coerce_setting
        parser.add_argument(f"--{flag_name(name)}", dest=name, default=None, help=text, metavar=metavar)


# ---- reference documentation -----------------------------------------------------------------

_SETTINGS_MD = Path(__file__).resolve().parents[2] / "docs" / "SETTINGS.md"


def settings_markdown() -> str:
    """The settings reference (docs/SETTINGS.md), generated so it cannot drift from the code."""
    lines = ["# Trial settings", "",
             "Generated by `dpsweep.settings.write_settings_markdown()` from `TrialConfig`; do not edit by hand.",
             "Each setting is a `dpsweep train` flag, a key of a `--config` YAML file, and a key of a search",
             "space (in its section, or under `training:`). Searchable settings may be a distribution under",
             "`search:` (the non-private baseline searches only those marked *all*). Column: stored as its own",
             "results-store column.", "",
             "| setting | flag | search-space key | type | default | bounds | search | column | meaning |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in SETTINGS.items():
        section, key = yaml_home(name)
        options = choices(name)
        kind = " \\| ".join(options) if options else getattr(setting_type(name), "__name__", "list")
        bounds = s.bounds_text() if s.low is not None or s.high is not None else ""
        flag = f"`--{flag_name(name)}`" if s.flag else ""
        lines.append(f"| `{name}` | {flag} | `{section}.{key}` | {kind} | `{default(name)}` | {bounds} | "
                     f"{'' if s.search == 'no' else s.search} | {'yes' if s.column else ''} | {s.help} |")
    return "\n".join(lines) + "\n"


def write_settings_markdown(path: str | Path = _SETTINGS_MD) -> Path:
    out = Path(path)
    out.write_text(settings_markdown(), encoding="utf-8")
    return out
