"""Fast paths for MIMIC-CXR's two large CSVs (227k label rows, 377k split rows), with pyarrow.

Each function returns exactly what the row-by-row reader in `mimic_cxr` returns for a
well-formed file, or None as soon as anything is unusual (a header with spaces or
duplicates, a missing column, an id that is not plain digits, a label outside the
allowed values, a study listed twice, a parse error). The caller then runs the
row-by-row reader, which names the file, row and column of the problem: errors stay
exactly as they were; only well-formed files take the fast path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpsweep.data.csvio import open_text

_ID = re.compile(r"^\d+$")


def _clean_header(path: Path, needed: Sequence[str]) -> bool:
    """The header holds every needed column, unpadded and once each (what the slow path accepts too)."""
    try:
        with open_text(path) as handle:
            header = next(csv.reader(handle), None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        return False
    return (header is not None and len(set(header)) == len(header) and all(h == h.strip() for h in header)
            and all(name in header for name in needed))


def _string_columns(path: Path, columns: Sequence[str]):
    """The named columns as pyarrow string arrays (empty cells as ""), or None on any parse problem."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    try:
        table = pacsv.read_csv(
            str(path), parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=list(columns),
                                                 column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError, ValueError):
        return None
    return {c: table.column(c).combine_chunks() for c in columns}


def _ids(values) -> np.ndarray | None:
    """Whole-number ids ("123", " 123 ", "123.0") as int64; None if any is anything else."""
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(values)
    text = pc.replace_substring_regex(text, pattern=r"\.0$", replacement="", max_replacements=1)
    if not pc.all(pc.match_substring_regex(text, pattern=r"^[0-9]+$")).as_py():
        return None
    if len(text) and pc.max(pc.utf8_length(text)).as_py() > 18:  # beyond int64: let the slow path decide
        return None
    return pc.cast(text, "int64").to_numpy()


def _labels(values, *, allowed: Sequence[float], blank: float) -> np.ndarray | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(values)
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    try:
        numbers = pc.cast(pc.if_else(pc.equal(text, ""), "0", text), "float64").to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return None
    numbers = np.where(empty, blank, numbers)
    if not np.isin(numbers, np.asarray(allowed, dtype=np.float64)).all():
        return None
    return numbers.astype(np.float32)


def fast_labels(path: Path, label_names: Sequence[str], *, allowed: Sequence[float],
                blank: float) -> dict[int, tuple[int, np.ndarray]] | None:
    """study_id -> (subject_id, raw labels) as `mimic_cxr.read_labels` gives it, or None."""
    columns = ("subject_id", "study_id", *label_names)
    if not _clean_header(path, columns):
        return None
    table = _string_columns(path, columns)
    if table is None:
        return None
    studies, subjects = _ids(table["study_id"]), _ids(table["subject_id"])
    if studies is None or subjects is None or len(np.unique(studies)) != len(studies):
        return None
    raw = np.empty((len(studies), len(label_names)), dtype=np.float32)
    for j, name in enumerate(label_names):
        column = _labels(table[name], allowed=allowed, blank=blank)
        if column is None:
            return None
        raw[:, j] = column
    return {study: (subject, raw[i]) for i, (study, subject)
            in enumerate(zip(studies.tolist(), subjects.tolist(), strict=True))}


def fast_split(path: Path, split_names: dict[str, str]) -> dict[int, str] | None:
    """study_id -> split as `mimic_cxr.read_split` gives it (one row per image collapsed), or None."""
    import pyarrow.compute as pc

    if not _clean_header(path, ("study_id", "split")):
        return None
    table = _string_columns(path, ("study_id", "split"))
    if table is None:
        return None
    studies = _ids(table["study_id"])
    names = pc.utf8_lower(pc.utf8_trim_whitespace(table["split"])).to_numpy(zero_copy_only=False)
    if studies is None or not np.isin(names, list(split_names)).all():
        return None
    order = np.argsort(studies, kind="stable")
    studies, names = studies[order], names[order]
    same_study = studies[1:] == studies[:-1]
    if (same_study & (names[1:] != names[:-1])).any():
        return None  # a study in two splits: the slow path names the row
    first = np.concatenate(([True], ~same_study))
    return {study: split_names[name] for study, name in zip(studies[first].tolist(), names[first].tolist(),
                                                            strict=True)}
