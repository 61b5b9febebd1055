"""Search-space files -> a typed, validated `SweepSpec`, before any Ray resource is used.

A search space is a YAML file with these sections (see search_spaces/quickstart.yaml):

    name: quickstart                    # sweep name; the store's sweep_id
    dataset:  {format, path, name?, sections?, uncertain_policy?, max_length?, val_fraction?}
    model:    {path?, pooling?, lora_targets?, lora_layers?}
    privacy:  {epsilons: [1, 3, 8, inf], delta?, accountant?}
    search:   {rank, lr, clip, sigma, batch_size?, max_epochs?, lora_alpha?, lora_dropout?, head_lr?,
               head_clip_share?}
    training: {any other TrialConfig key, fixed for every trial}
    trials_per_target: 4
    sampler:  {name: tpe, seed: 0}
    resources: {workers_per_trial, cpus_per_worker, gpus_per_worker, max_concurrent_trials}
    store: results/store

Each `search` entry is a fixed value or a distribution:
`{dist: loguniform, low: 1e-3, high: 1e-2}`, `{dist: uniform, ...}`, `{dist: int, low, high}`
or `{dist: choice, values: [2, 4, 8]}`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from dpsweep.errors import ConfigError
from dpsweep.settings import (
    EPSILON_MAX,
    SETTINGS,
    TrialConfig,
    read_yaml,
    searchable,
    setting_type,
    yaml_home,
)

Dist = Literal["loguniform", "uniform", "int", "choice"]
DISTS: tuple[str, ...] = ("loguniform", "uniform", "int", "choice")
SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "nsgaii")

_SECTIONS = ("name", "dataset", "model", "privacy", "public_data", "search", "training", "trials_per_target",
             "sampler", "resources", "store")
# Keys of the sections that are the sweep's own, not a trial setting
_SWEEP_KEYS = {"dataset": ("name",), "privacy": ("epsilons", "tuning")}


def _section_keys(section: str) -> dict[str, str | None]:
    """YAML key -> setting name for one section (None: a sweep-level key). `training` takes any."""
    if section == "training":
        return {name: name for name in SETTINGS if name != "epsilon"}
    keys: dict[str, str | None] = {}
    for name in SETTINGS:
        home, key = yaml_home(name)
        if home == section and name != "epsilon":
            keys[key] = name
    keys.update({key: None for key in _SWEEP_KEYS.get(section, ())})
    return keys


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: a distribution over a range, or a list of choices."""

    key: str
    dist: Dist
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.dist == "choice":
            return f"choice{list(self.values)}"
        return f"{self.dist}[{self.low:g}, {self.high:g}]"

    @property
    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value the parameter can take."""
        if self.dist == "choice":
            return min(self.values), max(self.values)
        return float(self.low), float(self.high)


TuningMethod = Literal["random-stopping"]
TUNING_DISTRIBUTIONS = ("logarithmic", "geometric", "poisson")
TuningTarget = Literal["trial", "release"]
# Privacy settings every trial of a random-stopping target must share: the release bound is
# one RDP curve, and it must hold for every setting the search could draw.
_SHARED_PRIVACY = ("sigma", "batch_size", "max_epochs", "max_steps")


@dataclass(frozen=True)
class Tuning:
    """`privacy.tuning`: release only the best of a random number of trials (Papernot & Steinke 2022).

    distribution/mean_trials: how the number of trials per target is drawn. target:
    "trial" calibrates each trial to the ε target and reports the (larger) release ε;
    "release" calibrates each trial so that the release ε, tuning included, meets it.
    """

    method: TuningMethod = "random-stopping"
    distribution: str = "logarithmic"
    mean_trials: float = 4.0
    target: TuningTarget = "trial"


@dataclass(frozen=True)
class Resources:
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_concurrent_trials: int = 2

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0


@dataclass(frozen=True)
class SweepSpec:
    """A validated search space: the base trial config, what is searched, and how to run it."""

    name: str
    source: str
    base: TrialConfig
    dataset_name: str | None
    epsilons: tuple[float, ...]
    params: tuple[Param, ...]
    trials_per_target: int
    sampler: str = "tpe"
    seed: int = 0
    resources: Resources = field(default_factory=Resources)
    store: str = "results/store"
    tuning: Tuning | None = None  # None: an ordinary (adaptive) sweep, ε per trial

    def params_for(self, epsilon: float) -> tuple[Param, ...]:
        """Searched parameters for one target: the non-private baseline searches rank and lr only."""
        if math.isinf(epsilon):
            return tuple(p for p in self.params if p.key in searchable(private=False))
        return self.params

    def base_for(self, epsilon: float) -> TrialConfig:
        return self.base.override(epsilon=epsilon)

    @property
    def total_trials(self) -> int:
        return self.trials_per_target * len(self.epsilons)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a search-space YAML file (raises ConfigError naming file and field)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path} does not exist; pass a YAML file such as "
                          "search_spaces/quickstart.yaml")
    return spec_from_mapping(read_yaml(path), source=str(path))


def spec_from_mapping(data: Any, *, source: str) -> SweepSpec:
    """Validate the parsed content of a search-space file."""
    err = _Errors(source)
    if not isinstance(data, dict):
        raise err("(top level)", "must be a mapping with sections " + ", ".join(_SECTIONS))
    _refuse_unknown(err, "", data, _SECTIONS)
    for required in ("name", "dataset", "privacy", "search"):
        if required not in data:
            raise err(required, "is missing; add it (see search_spaces/quickstart.yaml)")
    name = str(data["name"])
    if not name.replace("-", "").replace("_", "").isalnum():
        raise err("name", f"must use letters, digits, '-' or '_' only, got {name!r}")
    flat, where, dataset_name = _flat_config(err, data)
    epsilons = _privacy(err, _section(err, data, "privacy"))
    params = _search(err, _section(err, data, "search"), flat, where)
    try:
        base = TrialConfig.from_mapping(flat, source=source)
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None
    _check_searched_settings(err, base, params)
    trials = data.get("trials_per_target", 4)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise err("trials_per_target", f"must be an integer >= 1, got {trials!r}")
    sampler, seed = _sampler(err, data.get("sampler", {}))
    tuning = _tuning(err, _section(err, data, "privacy").get("tuning"), sampler=sampler, params=params,
                     trials_given="trials_per_target" in data)
    return SweepSpec(name=name, source=source, base=base, dataset_name=dataset_name, epsilons=epsilons,
                     params=params, trials_per_target=trials, sampler=sampler, seed=seed,
                     resources=_resources(err, data.get("resources", {})),
                     store=_store(err, data.get("store", "results/store")), tuning=tuning)


def _check_searched_settings(err: _Errors, base: TrialConfig, params: tuple[Param, ...]) -> None:
    """Every value a trial may draw must make a valid TrialConfig with the fixed settings."""
    for p in params:
        for value in p.values or ():
            try:
                base.override(source="search", **{p.key: value})
            except ConfigError as exc:
                raise err(f"search.{p.key}", f"value {value!r}: {exc}") from None


def _store(err: _Errors, store: Any) -> str:
    if not isinstance(store, str) or not store.strip():
        raise err("store", f"must be one folder or URI (a string), got {store!r}; e.g. store: results/store")
    return store


def _tuning(err: _Errors, raw: Any, *, sampler: str, params: tuple[Param, ...], trials_given: bool) -> Tuning | None:
    """`privacy.tuning`, checked against the theorem's conditions."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise err("privacy.tuning", f"must be a mapping like {{method: random-stopping, distribution: "
                  f"logarithmic, mean_trials: 4}}, got {raw!r}")
    _refuse_unknown(err, "privacy.tuning.", raw, [f.name for f in fields(Tuning)])
    tuning = Tuning(**raw)
    if tuning.method != "random-stopping":
        raise err("privacy.tuning.method", f"must be random-stopping, got {tuning.method!r}")
    if tuning.distribution not in TUNING_DISTRIBUTIONS:
        raise err("privacy.tuning.distribution", f"must be one of {', '.join(TUNING_DISTRIBUTIONS)}, "
                  f"got {tuning.distribution!r}")
    mean = tuning.mean_trials
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not (1 <= mean <= 1000):
        raise err("privacy.tuning.mean_trials", f"must be a number in [1, 1000], got {mean!r}")
    if tuning.target not in ("trial", "release"):
        raise err("privacy.tuning.target", f"must be trial or release, got {tuning.target!r}")
    if sampler != "random":
        raise err("sampler.name", f"random-stopping tuning needs sampler: random, got {sampler!r}: an "
                  "adaptive searcher (TPE) picks later trials from earlier scores on the private data, "
                  "which Papernot & Steinke's theorem does not cover")
    if trials_given:
        raise err("trials_per_target", "is drawn at random in random-stopping tuning (mean_trials sets "
                  "its mean); remove trials_per_target")
    shared = [p.key for p in params if p.key in _SHARED_PRIVACY]
    if shared:
        raise err(f"search.{shared[0]}", "must be fixed in random-stopping tuning: every trial of a target "
                  "shares one privacy curve, so the release bound holds for any setting the search draws")
    return replace(tuning, mean_trials=float(mean))


class _Errors:
    """Builds `file: field: rule, got value; fix` errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")


def _section(err: _Errors, data: dict, key: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise err(key, f"must be a mapping of key: value, got {type(value).__name__}")
    return value


def _refuse_unknown(err: _Errors, prefix: str, mapping: dict, known) -> None:
    for key in mapping:
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean '{near[0]}'?" if near else "valid keys: " + ", ".join(known)
            raise err(f"{prefix}{key}", f"unknown key; {hint}")


def _flat_config(err: _Errors, data: dict) -> tuple[dict, dict, str | None]:
    """dataset/model/privacy/training sections -> (flat TrialConfig keys, where each came from, name).

    A setting may be given in its own section or in `training`, not in both.
    """
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for section in ("dataset", "model", "privacy", "public_data", "training"):
        mapping = _section(err, data, section)
        keys = _section_keys(section)
        _refuse_unknown(err, f"{section}.", mapping, keys)
        for key, value in mapping.items():
            if keys[key] is not None:
                _put(err, flat, where, keys[key], value, f"{section}.{key}")
    dataset = _section(err, data, "dataset")
    for key in ("format", "path"):
        if not dataset.get(key):
            raise err(f"dataset.{key}", "is missing; give the reader (mimic-cxr, ct-rate, csv) and the "
                      "folder holding the data")
        if not isinstance(dataset[key], str):
            raise err(f"dataset.{key}", f"must be one name or folder (a string), got {dataset[key]!r}")
    flat["data_path"] = str(dataset["path"])  # relative to where the sweep is launched
    from dpsweep.data import FORMATS

    if flat["dataset_format"] not in FORMATS:
        raise err("dataset.format", f"unknown reader {flat['dataset_format']!r}; use one of {', '.join(FORMATS)}")
    name = dataset.get("name")
    return flat, where, str(name) if name is not None else None


def _put(err: _Errors, flat: dict, where: dict, name: str, value: Any, place: str) -> None:
    """Set one setting, refusing a second place that sets it too."""
    if name in where:
        raise err(place, f"sets '{name}', which {where[name]} sets already; keep one of the two")
    flat[name], where[name] = value, place


def _privacy(err: _Errors, privacy: dict) -> tuple[float, ...]:
    raw = privacy.get("epsilons")
    if not isinstance(raw, list) or not raw:
        raise err("privacy.epsilons", f"must be a non-empty list such as [1, 3, 8, inf], got {raw!r}")
    epsilons = []
    for value in raw:
        try:
            if isinstance(value, bool):
                raise TypeError
            eps = float(value)
        except (TypeError, ValueError):
            raise err("privacy.epsilons", f"{value!r} is not a number; use numbers or inf") from None
        if not eps > 0:
            raise err("privacy.epsilons", f"every target must be > 0, got {value!r}; use inf for no DP")
        if math.isfinite(eps) and eps > EPSILON_MAX:
            raise err("privacy.epsilons", f"every finite target must be <= {EPSILON_MAX:g}, got {eps:g}; use "
                      "inf for no DP")
        epsilons.append(eps)
    if len(set(epsilons)) != len(epsilons):
        raise err("privacy.epsilons", f"targets must be distinct, got {raw!r}")
    return tuple(sorted(epsilons))


def _search(err: _Errors, search: dict, flat: dict, where: dict) -> tuple[Param, ...]:
    """Distributions become Params; fixed values go into the base config."""
    _refuse_unknown(err, "search.", search, searchable())
    params = []
    for key, value in search.items():
        if isinstance(value, dict):
            if key in where:
                raise err(f"search.{key}", f"searches '{key}', which {where[key]} fixes; keep one of the two")
            params.append(_param(err, f"search.{key}", key, value))
        else:
            _put(err, flat, where, key, value, f"search.{key}")
    return tuple(params)


def _param(err: _Errors, where: str, key: str, spec: dict) -> Param:
    _refuse_unknown(err, f"{where}.", spec, ("dist", "low", "high", "values"))
    dist = spec.get("dist")
    if dist not in DISTS:
        raise err(f"{where}.dist", f"must be one of {', '.join(DISTS)}, got {dist!r}")
    if dist == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise err(f"{where}.values", f"choice needs a non-empty list, got {values!r}")
        for v in values:
            _check_value(err, where, key, v)
        return Param(key, "choice", values=tuple(values))
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except KeyError as exc:
        raise err(f"{where}.{exc.args[0]}", f"is missing; {dist} needs low and high") from None
    except (TypeError, ValueError):
        raise err(where, f"low and high must be numbers, got {spec.get('low')!r}, {spec.get('high')!r}") from None
    if not low <= high:
        raise err(where, f"low <= high must hold, but got (low={low:g}, high={high:g})")
    if dist == "loguniform" and low <= 0:
        raise err(f"{where}.low", f"loguniform needs low > 0, got {low:g}")
    if dist != "int" and setting_type(key) is int:
        raise err(f"{where}.dist", f"{key} is an integer; use dist: int or dist: choice")
    if dist == "int" and (not low.is_integer() or not high.is_integer()):
        raise err(where, f"int needs integer bounds, got (low={low:g}, high={high:g})")
    for v in (low, high):
        _check_value(err, where, key, v)
    return Param(key, dist, low=low, high=high)


def _check_value(err: _Errors, where: str, key: str, value: Any) -> None:
    """Every value a distribution can produce must be a valid value of its setting (rules across
    settings are checked against the fixed ones in _check_searched_settings)."""
    from dpsweep.settings import check_setting, coerce_setting

    try:
        check_setting(key, coerce_setting(key, value, source=where))
    except ConfigError as exc:
        raise err(where, f"value {value!r} is invalid ({str(exc).split(': ', 1)[-1]})") from None


def _sampler(err: _Errors, sampler: Any) -> tuple[str, int]:
    if isinstance(sampler, str):
        sampler = {"name": sampler}
    if not isinstance(sampler, dict):
        raise err("sampler", f"must be a mapping like {{name: tpe, seed: 0}}, got {sampler!r}")
    _refuse_unknown(err, "sampler.", sampler, ("name", "seed"))
    name = str(sampler.get("name", "tpe")).lower()
    if name not in SAMPLERS:
        raise err("sampler.name", f"unknown Optuna sampler {name!r}; use one of {', '.join(SAMPLERS)}")
    seed = sampler.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise err("sampler.seed", f"must be an integer, got {seed!r}")
    return name, seed


def _resources(err: _Errors, resources: Any) -> Resources:
    if not isinstance(resources, dict):
        raise err("resources", f"must be a mapping, got {resources!r}")
    known = [f.name for f in fields(Resources)]
    _refuse_unknown(err, "resources.", resources, known)
    out = Resources(**resources)
    checks = [
        (_is_int(out.workers_per_trial) and 1 <= out.workers_per_trial <= 10_000, "workers_per_trial",
         "an integer from 1 to 10000"),
        (_is_number(out.cpus_per_worker) and 0 < out.cpus_per_worker <= 10_000, "cpus_per_worker",
         "a number > 0 (Ray refuses 0 CPUs) and <= 10000, e.g. 1"),
        (_is_number(out.gpus_per_worker) and 0 <= out.gpus_per_worker <= 1_000, "gpus_per_worker",
         "a number from 0 to 1000"),
        (_is_int(out.max_concurrent_trials) and 1 <= out.max_concurrent_trials <= 10_000,
         "max_concurrent_trials", "an integer from 1 to 10000"),
    ]
    for ok, key, rule in checks:
        if not ok:
            raise err(f"resources.{key}", f"must be {rule}, got {getattr(out, key)!r}")
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (YAML's true/false and "1" are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
