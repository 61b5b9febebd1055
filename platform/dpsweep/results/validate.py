"""Check and coerce one trial row before it enters the store.

Why: a row written wrongly is read wrongly by every later query, and the store must
never hold report text. So :func:`coerce_row` refuses unknown fields (and any field
named like text or report), coerces numbers and timestamps to the schema's types, and
checks ranges and cross-field rules (a completed private row carries its privacy
ledger). Every error names the field, the rule, the value received and the fix.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from dpsweep.errors import UserInputError
from dpsweep.results.schema import (
    COLUMN_NAMES,
    METRIC_COLUMNS,
    PRIVACY_LEDGER,
    REQUIRED_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
)

_TEXT_LIKE = re.compile(r"text|report", re.IGNORECASE)
# Alphanumeric runs joined by single '.', '_' or '-': safe in file names, and the
# "<sweep_id>__<trial_id>" file name cannot be produced by two different id pairs.
_ID = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
# Starts with a letter so hive inference (pyarrow, pandas, DuckDB) reads it as a string.
_DATASET = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_DATASET_RESERVED = {"inf", "infinity", "epoch"}  # DuckDB's hive autocast makes these dates
MAX_ERROR_CHARS = 500
MAX_CONFIG_CHARS = 1_000_000


@dataclass(frozen=True)
class _Range:
    low: float
    high: float = math.inf
    low_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}]"


_UNIT = _Range(0.0, 1.0)
_RANGES: dict[str, _Range] = {
    **{m: _UNIT for m in METRIC_COLUMNS},
    "epsilon_target": _Range(0.0, low_open=True),
    "epsilon": _Range(0.0),
    "delta": _Range(0.0, 1.0),
    "sigma": _Range(0.0),
    "clip": _Range(0.0, low_open=True),
    "sample_rate": _Range(0.0, 1.0),
    "steps": _Range(0),
    "rank": _Range(1),
    "lora_alpha": _Range(0.0, low_open=True),
    "lora_dropout": _Range(0.0, 1.0),
    "lr": _Range(0.0, low_open=True),
    "batch_size": _Range(1),
    "epochs": _Range(0.0),
    "max_length": _Range(1),
    "n_train": _Range(0),
    "n_val": _Range(0),
    "train_seconds": _Range(0.0),
    "wall_seconds": _Range(0.0),
}


def _bad(name: str, rule: str, value: Any, fix: str = "") -> UserInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return UserInputError(f"results row field '{name}': {rule}, but got {shown}" + (f"; {fix}" if fix else ""))


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad(name, "must be an integer", value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise _bad(name, "must be an integer", value)


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(name, "must be a number", value)
    try:
        out = float(value) if isinstance(value, (numbers.Real, str)) else None
    except ValueError:
        out = None
    if out is None:
        raise _bad(name, "must be a number", value)
    if math.isnan(out):
        raise _bad(name, "must not be NaN", value, "pass None for a missing value")
    return out


def _to_timestamp(name: str, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _bad(name, "must be an ISO 8601 time", value) from None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = datetime.fromtimestamp(float(value), tz=timezone.utc)
    if not isinstance(value, datetime):
        raise _bad(name, "must be a datetime, ISO string or epoch seconds", value)
    if value.tzinfo is None:
        raise _bad(name, "must be timezone-aware", value, "use datetime.now(timezone.utc)")
    return value.astimezone(timezone.utc)


def _to_json_object(name: str, value: Any) -> str:
    if isinstance(value, Mapping):
        try:
            return json.dumps(dict(value), sort_keys=True, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise _bad(name, f"must be JSON-serialisable ({exc})", type(value).__name__) from None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise _bad(name, "must be a JSON object string", value) from None
        if isinstance(parsed, dict):
            return value
    raise _bad(name, "must be a dict or a JSON object string", value)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _coerce(name: str, typ: pa.DataType, value: Any) -> Any:
    if pa.types.is_integer(typ):
        return _to_int(name, value)
    if pa.types.is_floating(typ):
        return _to_float(name, value)
    if pa.types.is_timestamp(typ):
        return _to_timestamp(name, value)
    if pa.types.is_boolean(typ):
        if not isinstance(value, bool):
            raise _bad(name, "must be true or false", value)
        return value
    if name in ("per_label_f1", "config_json"):
        return _to_json_object(name, value)
    if name in ("sweep_id", "trial_id") and isinstance(value, numbers.Integral):
        return str(value)
    if not isinstance(value, str):
        raise _bad(name, "must be a string", value)
    return value


def _check_strings(row: dict[str, Any]) -> None:
    for name in ("sweep_id", "trial_id"):
        if not _ID.fullmatch(row[name]):
            raise _bad(name, "must be letters/digits joined by single '.', '_' or '-'", row[name],
                       "it becomes part of the file name")
    check_dataset_name(row["dataset"])
    if row["status"] not in STATUSES:
        raise _bad("status", f"must be one of {list(STATUSES)}", row["status"])
    if row["schema_version"] != SCHEMA_VERSION:
        raise _bad("schema_version", f"must be {SCHEMA_VERSION}", row["schema_version"])
    if row["error"] is not None and len(row["error"]) > MAX_ERROR_CHARS:
        row["error"] = row["error"][: MAX_ERROR_CHARS - 3] + "..."
    if len(row["config_json"]) > MAX_CONFIG_CHARS:
        raise _bad("config_json", f"must be at most {MAX_CONFIG_CHARS} characters",
                   f"<{len(row['config_json'])} characters>", "store configs, not data")


def check_id(value: Any, *, what: str) -> str:
    """Return ``value`` if it is a valid sweep or trial id, else raise naming ``what`` (e.g. a flag)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UserInputError(f"{what} must be ASCII letters/digits joined by single '.', '_' or '-' "
                             f"(it becomes part of the store's file names), but got {shown}; "
                             "pass e.g. my-sweep_1")
    return value


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset (partition) name, else raise naming the rule."""
    if not isinstance(name, str) or not _DATASET.fullmatch(name) or name.lower() in _DATASET_RESERVED:
        raise _bad("dataset", "must start with a letter, use only letters, digits, '.', '_', '-' "
                   f"and not be one of {sorted(_DATASET_RESERVED)}", name)
    return name


def _check_per_label(row: dict[str, Any]) -> None:
    if row["per_label_f1"] is None:
        return
    for label, f1 in json.loads(row["per_label_f1"]).items():
        if f1 is not None and not (isinstance(f1, (int, float)) and _UNIT.contains(f1)):
            raise _bad("per_label_f1", f"values must be F1 scores in {_UNIT} or null", {label: f1})


def _check_cross_field(row: dict[str, Any]) -> None:
    if row["status"] != "completed":
        return
    for name in ("epsilon", "weighted_f1", "macro_f1"):
        if row[name] is None:
            raise _bad(name, "is required when status is 'completed'", None)
    private = math.isfinite(row["epsilon_target"])
    if private != math.isfinite(row["epsilon"]) or row["epsilon"] <= 0:
        raise _bad("epsilon", "must be > 0 and finite exactly when epsilon_target is finite "
                   f"(epsilon_target={row['epsilon_target']})", row["epsilon"])
    if private:
        for name in PRIVACY_LEDGER:
            if row[name] is None:
                raise _bad(name, "is required for a completed private trial (the privacy ledger "
                           "lets any epsilon be recomputed)", None)


def coerce_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``row`` checked against the schema, with every column present and typed.

    Raises :class:`~dpsweep.errors.UserInputError` (a ``ValueError``) naming the bad field.
    ``schema_version`` and ``dpsweep_version`` default to the current ones; other missing
    nullable columns become None.
    """
    if not isinstance(row, Mapping):
        raise UserInputError(f"a results row must be a dict, but got {type(row).__name__}")
    for name in row:
        if _TEXT_LIKE.search(str(name)):
            raise _bad(str(name), "is refused: the results store never holds report text", "...",
                       "store metrics and configs only")
    unknown = sorted(set(map(str, row)) - set(COLUMN_NAMES))
    if unknown:
        raise _bad(unknown[0], "is not a column of the results schema", row[unknown[0]],
                   "see dpsweep/results/SCHEMA.md")
    from dpsweep import __version__

    defaults = {"schema_version": SCHEMA_VERSION, "dpsweep_version": __version__}
    out: dict[str, Any] = {}
    for field in SCHEMA:
        value = row.get(field.name, defaults.get(field.name))
        if value is None:
            if field.name in REQUIRED_COLUMNS:
                raise _bad(field.name, "is required", None)
            out[field.name] = None
            continue
        out[field.name] = value = _coerce(field.name, field.type, value)
        limits = _RANGES.get(field.name)
        if limits is not None and not limits.contains(value):
            raise _bad(field.name, f"must lie in {limits}", value)
    _check_strings(out)
    _check_per_label(out)
    _check_cross_field(out)
    return out
