"""Reader for CT-RATE: chest-CT report CSVs and the 18 predicted abnormality labels.

Layout: `dataset/radiology_text_reports/{train,validation}_reports.csv` and
`dataset/multi_abnormality_labels/{train,valid}_predicted_labels.csv` under the root.
Each row is one reconstruction (`train_1_a_2.nii.gz`: patient train_1, scan a,
reconstruction 2); reconstructions of a scan share one report, so rows are merged to
one per scan. CT-RATE's validation set is the held-out TEST split here; our validation
split is carved from train by patient.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsweep.data.csvio import Table, find_csv, read_table
from dpsweep.data.labels import CT_RATE_LABELS
from dpsweep.data.records import NEGATIVE, POSITIVE, build_split, parse_label
from dpsweep.data.sections import choose_text, normalize_space
from dpsweep.data.splits import carve_validation, check_disjoint
from dpsweep.data.types import Corpus, DataOptions
from dpsweep.errors import DataError

FORMAT = "ct-rate"
REPORTS_DIR = Path("radiology_text_reports")
LABELS_DIR = Path("multi_abnormality_labels")
LAYOUT = (
    "the CT-RATE root holding dataset/radiology_text_reports/{train,validation}_reports.csv "
    "and dataset/multi_abnormality_labels/{train,valid}_predicted_labels.csv"
)
# our split name -> (reports file stem, labels file stem)
PARTS = {
    "train": ("train_reports", "train_predicted_labels"),
    "test": ("validation_reports", "valid_predicted_labels"),
}
REPORT_COLUMNS = ("VolumeName", "Findings_EN", "Impressions_EN")

_VOLUME = re.compile(
    r"^(?P<patient>(?P<kind>[A-Za-z]+)_(?P<number>\d+))_(?P<scan>[A-Za-z]+)_"
    r"(?P<recon>\d+)(\.nii(\.gz)?)?$"
)
_LABEL_RULE = "CT-RATE labels must be 0 or 1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scan:
    """One CT scan of a patient (all its reconstructions share one report)."""

    patient: str
    name: str
    sort_key: tuple


@dataclass(frozen=True)
class Volume:
    """A parsed VolumeName: the scan and the reconstruction number."""

    scan: Scan
    recon: int


def read_ct_rate(root: Path, options: DataOptions) -> Corpus:
    """Read a CT-RATE root: train (carved into train/val by patient) and validation as test."""
    base = _dataset_folder(root)
    skipped: Counter[str] = Counter()
    train_texts, train_raw, train_groups = _read_part(base, "train", options, skipped)
    test = None
    if _part_present(base, "test"):
        texts, raw, groups = _read_part(base, "test", options, skipped)
        if texts:
            test = build_split(texts, raw, groups, policy=options.uncertain_policy)
    is_val = carve_validation(
        train_groups,
        val_fraction=options.val_fraction,
        seed=options.seed,
        source=f"{FORMAT}: {base / REPORTS_DIR / 'train_reports.csv'}",
    )
    full = build_split(train_texts, train_raw, train_groups, policy=options.uncertain_policy)
    corpus = Corpus(
        name=FORMAT,
        format=FORMAT,
        groups_are_patients=True,
        label_names=CT_RATE_LABELS,
        train=full.take(~is_val),
        val=full.take(is_val),
        test=test,
        skipped={k: v for k, v in skipped.items() if v},
    )
    check_disjoint(
        {k: v.groups for k, v in corpus.splits().items()},
        source=f"{FORMAT}: {base}",
        fix="a patient's volumes must all be in train_* or all in valid_* files",
    )
    if skipped:
        log.info(
            "%s: skipped %s", FORMAT, ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
        )
    return corpus


def _dataset_folder(root: Path) -> Path:
    if not root.is_dir():
        raise DataError(f"{FORMAT}: data path {root} is not a folder; pass {LAYOUT}")
    for base in (root / "dataset", root):
        if (base / REPORTS_DIR).is_dir() or (base / LABELS_DIR).is_dir():
            return base
    raise DataError(
        f"{FORMAT}: folder {root} has no dataset/{REPORTS_DIR}/ or dataset/{LABELS_DIR}/; "
        f"pass {LAYOUT}"
    )


def _part_present(base: Path, part: str) -> bool:
    reports_stem, labels_stem = PARTS[part]
    return (
        find_csv(base / REPORTS_DIR, reports_stem) is not None
        or find_csv(base / LABELS_DIR, labels_stem) is not None
    )


def _required_csv(folder: Path, stem: str) -> Path:
    found = find_csv(folder, stem)
    if found is None:
        raise DataError(
            f"{FORMAT}: {stem.split('_')[-1]} file {folder / (stem + '.csv')} does not exist; "
            f"pass {LAYOUT}"
        )
    return found


def _read_part(
    base: Path, part: str, options: DataOptions, skipped: Counter[str]
) -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, raw labels and patient groups of one CT-RATE part, one row per scan."""
    reports_stem, labels_stem = PARTS[part]
    reports = read_table(
        _required_csv(base / REPORTS_DIR, reports_stem), fmt=FORMAT, kind="reports file"
    )
    labels = read_table(
        _required_csv(base / LABELS_DIR, labels_stem), fmt=FORMAT, kind="labels file"
    )
    texts = _scan_texts(reports, options, skipped)
    raws = _scan_labels(labels, skipped)
    scans = sorted(texts.keys() | raws.keys(), key=lambda v: v.sort_key)
    out_texts: list[str] = []
    out_raw: list[np.ndarray] = []
    groups: list[str] = []
    for scan in scans:
        if scan not in raws:
            skipped["scans with a report but no label row"] += 1
        elif scan not in texts:
            skipped["scans with labels but no report"] += 1
        else:
            out_texts.append(texts[scan])
            out_raw.append(raws[scan])
            groups.append(scan.patient)
    if part == "train" and not out_texts:
        raise DataError(
            f"{FORMAT}: no scan in {reports.path} has both report text and a label row "
            f"in {labels.path}; check that both files come from the same CT-RATE release"
        )
    raw = np.stack(out_raw) if out_raw else np.zeros((0, len(CT_RATE_LABELS)), np.float32)
    return out_texts, raw, groups


def _by_scan(table: Table) -> dict[Scan, list[int]]:
    """Scan -> its data rows, lowest reconstruction number first."""
    i_volume = table.index("VolumeName")
    rows: dict[Scan, list[tuple[int, int]]] = {}
    for r, row in enumerate(table.rows):
        volume = parse_volume(table, r, row[i_volume])
        rows.setdefault(volume.scan, []).append((volume.recon, r))
    return {scan: [r for _, r in sorted(recons)] for scan, recons in rows.items()}


def _scan_texts(table: Table, options: DataOptions, skipped: Counter[str]) -> dict[Scan, str]:
    """Scan -> text to classify, from its first reconstruction's report row."""
    table.require(
        REPORT_COLUMNS,
        expected="VolumeName, ClinicalInformation_EN, Technique_EN, "
        "Findings_EN and Impressions_EN columns",
    )
    i_findings, i_impression = table.index("Findings_EN"), table.index("Impressions_EN")
    out: dict[Scan, str] = {}
    for scan, rows in _by_scan(table).items():
        skipped["duplicate report rows of reconstructions merged"] += len(rows) - 1
        row = table.rows[rows[0]]
        text = choose_text(
            options.sections,
            findings=normalize_space(row[i_findings]),
            impression=normalize_space(row[i_impression]),
        )
        if text:
            out[scan] = text
        else:
            skipped["reports with no findings or impression text"] += 1
    return out


def _scan_labels(table: Table, skipped: Counter[str]) -> dict[Scan, np.ndarray]:
    """Scan -> labels of its first reconstruction (disagreeing reconstructions are counted)."""
    table.require(
        ("VolumeName", *CT_RATE_LABELS), expected="the 18 CT-RATE label columns after VolumeName"
    )
    columns = [(name, table.index(name)) for name in CT_RATE_LABELS]
    out: dict[Scan, np.ndarray] = {}
    for scan, rows in _by_scan(table).items():
        raws = [_row_labels(table, r, columns) for r in rows]
        differing = sum(not np.array_equal(raws[0], raw) for raw in raws[1:])
        if differing:
            skipped["reconstructions whose labels differ from their scan's first (first kept)"] += (
                differing
            )
        out[scan] = raws[0]
    return out


def _row_labels(table: Table, r: int, columns: list[tuple[str, int]]) -> np.ndarray:
    row = table.rows[r]
    return np.array(
        [
            parse_label(
                table, r, name, row[j], allowed=(POSITIVE, NEGATIVE), blank=None, rule=_LABEL_RULE
            )
            for name, j in columns
        ],
        dtype=np.float32,
    )


def parse_volume(table: Table, row: int, value: str) -> Volume:
    """Parse `train_12_a_2.nii.gz`: patient train_12, scan train_12_a, reconstruction 2."""
    match = _VOLUME.match(value.strip())
    if match is None:
        raise DataError(
            f"{table.where} data row {row + 1} column 'VolumeName' holds a name (not shown) "
            "that is not patient_scan_reconstruction; expected names like train_1_a_1.nii.gz"
        )
    scan = Scan(
        patient=match["patient"],
        name=f"{match['patient']}_{match['scan']}",
        sort_key=(match["kind"], int(match["number"]), match["scan"]),
    )
    return Volume(scan=scan, recon=int(match["recon"]))
