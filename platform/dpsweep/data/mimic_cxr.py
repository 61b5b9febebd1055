"""Reader for MIMIC-CXR: free-text reports, CheXpert labels and the official split.

Layout (PhysioNet): `files/pXX/pSSSSSSSS/sTTTTTTTT.txt` under the root, plus
`mimic-cxr-2.0.0-chexpert.csv(.gz)` (one row per study; 1.0 / 0.0 / -1.0 uncertain /
blank = not mentioned, read as negative) and `mimic-cxr-2.0.0-split.csv(.gz)` (one row
per image, collapsed here to studies). The CSVs come from MIMIC-CXR-JPG, so besides the
root they are looked for in its parent and in sibling MIMIC folders.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

from dpsweep.data.csvio import Table, find_csv, read_table
from dpsweep.data.labels import CHEXPERT_LABELS
from dpsweep.data.parallel import map_files
from dpsweep.data.records import NEGATIVE, POSITIVE, UNCERTAIN, build_split, parse_label
from dpsweep.data.sections import report_text
from dpsweep.data.splits import check_disjoint
from dpsweep.data.types import Corpus, DataOptions, Split
from dpsweep.errors import DataError

FORMAT = "mimic-cxr"
LABELS_STEM = "mimic-cxr-2.0.0-chexpert"
SPLIT_STEM = "mimic-cxr-2.0.0-split"
LAYOUT = (
    "the MIMIC-CXR root holding files/pXX/pSSSSSSSS/sTTTTTTTT.txt and "
    f"{LABELS_STEM}.csv(.gz) and {SPLIT_STEM}.csv(.gz)"
)
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}

_STUDY_FILE = re.compile(r"^s(\d+)\.txt$")
_LABEL_RULE = "CheXpert labels must be 1.0, 0.0, -1.0 (uncertain) or blank (not mentioned)"

log = logging.getLogger(__name__)


def read_mimic_cxr(root: Path, options: DataOptions) -> Corpus:
    """Read a MIMIC-CXR root into a corpus split by the official train/validate/test split."""
    if not root.is_dir():
        raise DataError(f"{FORMAT}: data path {root} is not a folder; pass {LAYOUT}")
    labels = _read_labels_file(locate_table(root, LABELS_STEM))
    study_split = _read_split_file(locate_table(root, SPLIT_STEM))
    reports = index_reports(root)
    skipped: Counter[str] = Counter()
    rows: dict[str, tuple[list[str], list[np.ndarray], list[str]]] = {
        name: ([], [], []) for name in SPLIT_NAMES.values()
    }
    kept = []
    for study, (subject, raw) in sorted(labels.items(), key=lambda kv: (kv[1][0], kv[0])):
        if study not in reports:
            skipped["labelled studies without a report file"] += 1
            continue
        if study not in study_split:
            skipped["labelled studies without a split row"] += 1
            continue
        kept.append((study, subject, raw))
    read_one = partial(_report_text, sections=options.sections)  # picklable, for map_files' pool
    texts_read = map_files(read_one, [reports[study] for study, _, _ in kept])
    for (study, subject, raw), text in zip(kept, texts_read, strict=True):
        if not text:
            skipped["reports with no text"] += 1
            continue
        texts, raws, groups = rows[study_split[study]]
        texts.append(text)
        raws.append(raw)
        groups.append(str(subject))
    unlabelled = len(reports.keys() - labels.keys())
    if unlabelled:
        skipped["report files without labels"] = unlabelled
    return _assemble(root, rows, options, dict(skipped))


def _assemble(root: Path, rows: dict, options: DataOptions, skipped: dict[str, int]) -> Corpus:
    """Build the corpus from per-split rows; DataError when train or val came out empty."""
    if skipped:
        log.info(
            "%s: skipped %s", FORMAT, ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
        )
    for needed, official in (("train", "train"), ("val", "validate")):
        if not rows[needed][0]:
            raise DataError(
                f"{FORMAT}: no {official} study under {root} has a report, a label row and a "
                f"split row (skipped: {skipped or 'none'}); check that files/, {LABELS_STEM} and "
                f"{SPLIT_STEM} belong to the same MIMIC-CXR release"
            )
    splits: dict[str, Split] = {}
    for name, (texts, raws, groups) in rows.items():
        if texts:
            splits[name] = build_split(
                texts, np.stack(raws), groups, policy=options.uncertain_policy
            )
    check_disjoint(
        {k: v.groups for k, v in splits.items()},
        source=f"{FORMAT}: {SPLIT_STEM}",
        fix="use the official split, which keeps each patient in one split",
    )
    return Corpus(
        name=FORMAT,
        format=FORMAT,
        groups_are_patients=True,
        label_names=CHEXPERT_LABELS,
        train=splits["train"],
        val=splits["val"],
        test=splits.get("test"),
        skipped=skipped,
    )


def _report_text(path: str, sections: str) -> str:
    with open(path, "rb") as handle:
        report = handle.read().decode("utf-8", errors="replace")
    return report_text(report, sections)




def _read_labels_file(path: Path) -> dict[int, tuple[int, np.ndarray]]:
    """read_labels of the file: pyarrow's fast path, or the row-by-row reader when it declines."""
    from dpsweep.data.fastcsv import fast_labels

    fast = fast_labels(path, CHEXPERT_LABELS, allowed=(POSITIVE, NEGATIVE, UNCERTAIN), blank=NEGATIVE)
    if fast is not None:
        return fast
    return read_labels(read_table(path, fmt=FORMAT, kind="labels file"))


def _read_split_file(path: Path) -> dict[int, str]:
    """read_split of the file: pyarrow's fast path, or the row-by-row reader (exact errors)."""
    from dpsweep.data.fastcsv import fast_split

    fast = fast_split(path, SPLIT_NAMES)
    if fast is not None:
        return fast
    return read_split(read_table(path, fmt=FORMAT, kind="split file"))


def locate_table(root: Path, stem: str) -> Path:
    """The first `stem`.csv(.gz) in the root, its parent or a sibling mimic-cxr* folder."""
    for folder in _search_folders(root):
        found = find_csv(folder, stem)
        if found is not None:
            log.info("%s: using %s", FORMAT, found)
            return found
    raise DataError(
        f"{FORMAT}: no {stem}.csv or {stem}.csv.gz in {root}, its parent or a sibling mimic-cxr* "
        f"folder; download it from MIMIC-CXR-JPG and put it in {root}"
    )


def _search_folders(root: Path) -> list[Path]:
    """root, its parent, sibling mimic-cxr* folders, and for PhysioNet's
    mimic-cxr/2.0.0 root also mimic-cxr-jpg/2.0.0 (the same version folder beside it)."""
    folders = [root, root.parent, *_mimic_folders(root.parent)]
    if root.parent.name.lower().startswith("mimic-cxr"):
        folders += [p / root.name for p in _mimic_folders(root.parent.parent)]
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique and folder.is_dir():
            unique.append(folder)
    return unique


def _mimic_folders(parent: Path) -> list[Path]:
    try:
        return sorted(
            p for p in parent.iterdir() if p.is_dir() and p.name.lower().startswith("mimic-cxr")
        )
    except OSError:
        return []


def read_labels(table: Table) -> dict[int, tuple[int, np.ndarray]]:
    """study_id -> (subject_id, raw labels with blank read as 0.0) from the CheXpert CSV."""
    expected = "subject_id, study_id and the 14 CheXpert label columns"
    table.require(("subject_id", "study_id", *CHEXPERT_LABELS), expected=expected)
    i_subject, i_study = table.index("subject_id"), table.index("study_id")
    columns = [(name, table.index(name)) for name in CHEXPERT_LABELS]
    out: dict[int, tuple[int, np.ndarray]] = {}
    first_row: dict[int, int] = {}
    for r, row in enumerate(table.rows):
        study = _parse_id(table, r, "study_id", row[i_study])
        subject = _parse_id(table, r, "subject_id", row[i_subject])
        if first_row.setdefault(study, r) != r:
            raise DataError(
                f"{table.where} data rows {first_row[study] + 1} and {r + 1} have the same "
                "study_id; keep one label row per study"
            )
        raw = np.array(
            [
                parse_label(
                    table,
                    r,
                    name,
                    row[j],
                    allowed=(POSITIVE, NEGATIVE, UNCERTAIN),
                    blank=NEGATIVE,
                    rule=_LABEL_RULE,
                )
                for name, j in columns
            ],
            dtype=np.float32,
        )
        out[study] = (subject, raw)
    return out


def read_split(table: Table) -> dict[int, str]:
    """study_id -> "train" / "val" / "test", collapsing the one-row-per-image split CSV."""
    table.require(("study_id", "split"), expected="dicom_id, study_id, subject_id and split")
    i_study, i_split = table.index("study_id"), table.index("split")
    out: dict[int, str] = {}
    first_row: dict[int, int] = {}
    for r, row in enumerate(table.rows):
        study = _parse_id(table, r, "study_id", row[i_study])
        value = row[i_split].strip().lower()
        if value not in SPLIT_NAMES:
            raise DataError(
                f"{table.where} data row {r + 1} column 'split' holds a value other than train, "
                "validate or test (not shown); use train, validate or test"
            )
        split = SPLIT_NAMES[value]
        first_row.setdefault(study, r)
        if out.setdefault(study, split) != split:
            raise DataError(
                f"{table.where} puts the images of one study in both {_official(out[study])} "
                f"(data row {first_row[study] + 1}) and {value} (data row {r + 1}); a study "
                "belongs to one split"
            )
    return out


def _official(split: str) -> str:
    return {v: k for k, v in SPLIT_NAMES.items()}[split]


def _parse_id(table: Table, row: int, column: str, value: str) -> int:
    text = value.strip()
    if text.endswith(".0"):  # ids re-saved by a spreadsheet as floats
        text = text[:-2]
    if not text.isdigit():
        raise DataError(
            f"{table.where} data row {row + 1} column {column!r} holds a value that is not a "
            "whole number (not shown); ids must be whole numbers"
        )
    return int(text)


def index_reports(root: Path) -> dict[int, str]:
    """study_id -> report file, for every files/p*/p*/s*.txt under the root."""
    files = root / "files"
    if not files.is_dir():
        raise DataError(
            f"{FORMAT}: folder {root} has no files/ subfolder of reports; pass {LAYOUT}"
        )
    out: dict[int, str] = {}  # paths as strings: 227k Path objects cost seconds and 100+ MB
    for prefix in _subdirs(str(files), "p"):
        for patient in _subdirs(prefix, "p"):
            with os.scandir(patient) as entries:
                for entry in entries:
                    match = _STUDY_FILE.match(entry.name)
                    if match and entry.is_file():
                        out[int(match.group(1))] = entry.path
    if not out:
        raise DataError(
            f"{FORMAT}: no report files files/pXX/pSSSSSSSS/sTTTTTTTT.txt under {root}; "
            f"pass {LAYOUT}"
        )
    return out


def _subdirs(folder: str, prefix: str) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries if e.name.startswith(prefix) and e.is_dir())
