"""Reader for a folder of labelled CSVs: one text column and one 0/1 column per label.

`train.csv` is required; `val.csv` and `test.csv` are optional (without a validation
file, validation rows are carved from train.csv, by the id column's groups when there
is one). Columns are named by the options, else detected: id-like columns (AccessionNo,
id, patient_id, ...) are ids; the text column is `DataOptions.text_column`, else
`report_text`, `text` or `report`, else the single non-numeric column; the labels are
`DataOptions.label_columns` in that order (every other column is then ignored), else every
column that is not the text or an id. Label cells hold 0, 1 or blank (blank = unknown,
masked out of loss and metrics).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsweep.data.csvio import Table, read_table
from dpsweep.data.records import NEGATIVE, POSITIVE, UNKNOWN, build_split, parse_label
from dpsweep.data.sections import normalize_space
from dpsweep.data.splits import carve_validation, check_disjoint
from dpsweep.data.types import Corpus, DataOptions, Split
from dpsweep.errors import DataError

FORMAT = "csv"
LAYOUT = (
    "a folder holding train.csv (and optionally val.csv and test.csv) with one text column "
    "and one 0/1 column per label"
)
TEXT_NAMES = ("report_text", "text", "report")
VAL_NAMES = ("val.csv", "valid.csv", "validation.csv")
# Normalised (lower-case, alphanumerics only) names of id columns; patient-level ones
# first, since they make the better split groups.
PATIENT_ID_NAMES = ("patientid", "subjectid", "mrn", "patient", "subject")
OTHER_ID_NAMES = (
    "id",
    "accessionno",
    "accessionnumber",
    "accession",
    "studyid",
    "reportid",
    "noteid",
    "rowid",
    "volumename",
    "index",
    "unnamed0",
    "imageid",
    "examid",
)
_ID_SUFFIX = re.compile(r"([_\s-]id$)|([a-z]I[dD]$)")
_NUMERIC = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_LABEL_RULE = (
    "label columns must hold 0, 1 or blank; fix the value, or name only the label columns "
    "with --label-columns (label_columns), or rename the column to end in _id if it is an id"
)
_NAMED_LABEL_RULE = (
    "the columns named by label_columns must hold 0, 1 or blank; fix the value, or leave "
    "the column out of --label-columns"
)
_SHOWN_COLUMNS = 30  # column names listed in a missing-column error, at most

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schema:
    """Which columns of a labelled CSV are the text, the group id and the labels."""

    text: str
    group: str | None
    labels: tuple[str, ...]


def read_labelled_csv(root: Path, options: DataOptions) -> Corpus:
    """Read a labelled-CSV folder into a corpus (validation carved from train if absent)."""
    if not root.is_dir():
        raise DataError(f"{FORMAT}: data path {root} is not a folder; pass {LAYOUT}")
    train_path = root / "train.csv"
    if not train_path.is_file():
        raise DataError(f"{FORMAT}: folder {root} has no train.csv; pass {LAYOUT}")
    train_table = read_table(train_path, fmt=FORMAT)
    schema = detect_schema(
        train_table, text_column=options.text_column, label_columns=options.label_columns
    )
    skipped: Counter[str] = Counter()
    train = _read_split(train_table, schema, options, skipped)
    val_path = _val_path(root)
    if val_path is None:
        is_val = carve_validation(
            train.groups,
            val_fraction=options.val_fraction,
            seed=options.seed,
            source=f"{FORMAT}: {train_path}",
        )
        train, val = train.take(~is_val), train.take(is_val)
    else:
        val = _read_other(val_path, schema, options, skipped)
    test_path = root / "test.csv"
    test = _read_other(test_path, schema, options, skipped) if test_path.is_file() else None
    corpus = Corpus(
        name=root.resolve().name,
        format=FORMAT,
        label_names=schema.labels,
        train=train,
        val=val,
        test=test,
        skipped=dict(skipped),
        groups_are_patients=schema.group is not None and _normal(schema.group) in PATIENT_ID_NAMES,
    )
    check_disjoint(
        {k: v.groups for k, v in corpus.splits().items()},
        source=f"{FORMAT}: {root}",
        fix=f"keep each {schema.group or 'id'} in one of train/val/test.csv",
    )
    return corpus


def _val_path(root: Path) -> Path | None:
    present = [root / name for name in VAL_NAMES if (root / name).is_file()]
    if len(present) > 1:
        raise DataError(
            f"{FORMAT}: folder {root} holds {' and '.join(p.name for p in present)}; "
            "keep one validation file, named val.csv"
        )
    return present[0] if present else None


def _read_other(path: Path, schema: Schema, options: DataOptions, skipped: Counter[str]) -> Split:
    """Read val.csv / test.csv, whose label columns must match train.csv's."""
    table = read_table(path, fmt=FORMAT)
    own = detect_schema(table, text_column=options.text_column, label_columns=options.label_columns)
    for name in schema.labels:
        if name not in own.labels:
            reason = "lacks" if name not in table.header else "has a non-label column"
            raise DataError(
                f"{FORMAT}: file {path} {reason} label column {name!r} of train.csv; "
                "give every file the same label columns"
            )
    for name in own.labels:
        if name not in schema.labels:
            raise DataError(
                f"{FORMAT}: file {path} has label column {name!r}, which train.csv "
                "lacks; give every file the same label columns"
            )
    return _read_split(table, Schema(own.text, own.group, schema.labels), options, skipped)


def _read_split(table: Table, schema: Schema, options: DataOptions, skipped: Counter[str]) -> Split:
    i_text = table.index(schema.text)
    i_group = table.index(schema.group) if schema.group else None
    columns = [(name, table.index(name)) for name in schema.labels]
    rule = _LABEL_RULE if options.label_columns is None else _NAMED_LABEL_RULE
    texts: list[str] = []
    raws: list[list[float]] = []
    groups: list[str] = []
    stem = table.path.stem
    for r, row in enumerate(table.rows):
        raw = [
            parse_label(
                table,
                r,
                name,
                row[j],
                allowed=(POSITIVE, NEGATIVE),
                blank=UNKNOWN,
                rule=rule,
            )
            for name, j in columns
        ]
        text = normalize_space(row[i_text])
        if not text:
            skipped[f"rows of {table.path.name} with empty text"] += 1
            continue
        group = row[i_group].strip() if i_group is not None else ""
        texts.append(text)
        raws.append(raw)
        groups.append(group or f"{stem}-row-{r + 1}")
    if not texts:
        raise DataError(
            f"{table.where} has no row with text in column {schema.text!r}; add data rows"
        )
    return build_split(
        texts, np.array(raws, dtype=np.float32), groups, policy=options.uncertain_policy
    )


def detect_schema(
    table: Table,
    *,
    text_column: str | None = None,
    label_columns: tuple[str, ...] | None = None,
) -> Schema:
    """Find the text, group id and label columns of a labelled CSV (see module docstring).

    text_column / label_columns, when given, must be columns of the file; with
    label_columns, exactly those are the labels (in that order) and other columns are
    ignored.
    """
    if not table.rows:
        raise DataError(f"{table.where} has a header but no data rows; add data rows")
    named = tuple(label_columns or ())
    if text_column is not None:
        _require_column(table, text_column, setting="text_column")
    for name in named:
        _require_column(table, name, setting="label_columns")
    ids = [n for n in table.header if is_id_column(n) and n != text_column and n not in named]
    others = [name for name in table.header if name not in ids and name not in named]
    text = text_column if text_column is not None else _text_column(table, others)
    labels = named or tuple(name for name in others if name != text)
    if not labels:
        raise DataError(
            f"{table.where} has no label columns besides text column "
            f"{text!r}; add one 0/1 column per label, or name them with --label-columns"
        )
    patient_ids = [name for name in ids if _normal(name) in PATIENT_ID_NAMES]
    group = (patient_ids or ids or [None])[0]
    return Schema(text=text, group=group, labels=labels)


def _require_column(table: Table, name: str, *, setting: str) -> None:
    """DataError naming the file, the column asked for and the file's columns (names only)."""
    if name in table.header:
        return
    shown = ", ".join(repr(n) for n in table.header[:_SHOWN_COLUMNS])
    more = len(table.header) - _SHOWN_COLUMNS
    shown += f" and {more} more" if more > 0 else ""
    raise DataError(
        f"{table.where} has no column {name!r} (named by {setting}); its columns are "
        f"{shown}; pass --{setting.replace('_', '-')} with one of those"
    )


def _text_column(table: Table, candidates: list[str]) -> str:
    by_normal = {name.strip().lower(): name for name in candidates}
    for wanted in TEXT_NAMES:
        if wanted in by_normal:
            return by_normal[wanted]
    textual = [name for name in candidates if not _all_numeric_or_blank(table, name)]
    if len(textual) == 1:
        return textual[0]
    found = ", ".join(repr(n) for n in textual) if textual else "none"
    raise DataError(
        f"{table.where} has no column named report_text, text or report, "
        f"and {len(textual)} non-numeric column(s) ({found}); rename the report text "
        "column to report_text, or name it with --text-column (text_column)"
    )


def _all_numeric_or_blank(table: Table, column: str) -> bool:
    j = table.index(column)
    return all(not row[j].strip() or _NUMERIC.match(row[j]) for row in table.rows)


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_id_column(name: str) -> bool:
    """True for id-like column names: AccessionNo, id, patient_id, StudyID, ..."""
    normal = _normal(name)
    return (
        normal in PATIENT_ID_NAMES
        or normal in OTHER_ID_NAMES
        or bool(_ID_SUFFIX.search(name.strip()))
    )
