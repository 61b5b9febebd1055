"""Builders of small corpora in the real on-disk layouts, shared by the data tests.

They reach the tests as fixtures (`build.write_mimic(...)`), not imports, so the test
folders need no __init__.py and no module name can clash with another package's tests.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from dpsweep.data import CHEXPERT_LABELS, CT_RATE_LABELS, write_synthetic

HEADER = "                                 FINAL REPORT"


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """Write a CSV (gzip when the name ends in .gz) with the csv module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mimic_report(
    *, findings: str | None = None, impression: str | None = None, other: str = ""
) -> str:
    """A report file in MIMIC-CXR's format, with the given sections."""
    lines = [
        HEADER,
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___-year-old woman with cough.  // eval for pneumonia",
        " ",
        " COMPARISON:  ___",
        " ",
    ]
    if other:
        lines += [f" {other}", " "]
    if findings is not None:
        lines += [" FINDINGS:", " ", f" {findings}", " "]
    if impression is not None:
        lines += [" IMPRESSION:", " ", f" {impression}", " "]
    return "\n".join(lines) + "\n"


@dataclass
class MimicStudy:
    subject: int
    study: int
    split: str  # train / validate / test
    report: str | None  # None: no report file
    labels: dict[str, str] = field(
        default_factory=dict
    )  # CheXpert label -> cell ("1.0", "-1.0", "")
    images: int = 1
    labelled: bool = True


def write_mimic(
    root: Path,
    studies: Sequence[MimicStudy],
    *,
    suffix: str = ".csv.gz",
    csv_dir: Path | None = None,
) -> Path:
    """A MIMIC-CXR root: report files, chexpert and split CSVs (in csv_dir, default root)."""
    csv_dir = csv_dir or root
    for s in studies:
        if s.report is not None:
            folder = root / "files" / f"p{str(s.subject)[:2]}" / f"p{s.subject}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"s{s.study}.txt").write_text(s.report, encoding="utf-8")
    write_csv(
        csv_dir / f"mimic-cxr-2.0.0-chexpert{suffix}",
        ("subject_id", "study_id", *CHEXPERT_LABELS),
        [
            [s.subject, s.study, *(s.labels.get(x, "") for x in CHEXPERT_LABELS)]
            for s in studies
            if s.labelled
        ],
    )
    rows = [
        [f"{s.study:08x}-{i}", s.study, s.subject, s.split]
        for s in studies
        for i in range(s.images)
    ]
    write_csv(
        csv_dir / f"mimic-cxr-2.0.0-split{suffix}",
        ("dicom_id", "study_id", "subject_id", "split"),
        rows,
    )
    return root


def ct_rate_labels(*positive: str) -> list[int]:
    return [int(name in positive) for name in CT_RATE_LABELS]


def write_ct_rate(
    root: Path,
    train: Sequence[tuple[str, str, str, list[int]]],
    valid: Sequence[tuple[str, str, str, list[int]]] = (),
) -> Path:
    """A CT-RATE root from (VolumeName, findings, impression, 18 labels) rows per part."""
    reports = root / "dataset" / "radiology_text_reports"
    labels = root / "dataset" / "multi_abnormality_labels"
    header = (
        "VolumeName",
        "ClinicalInformation_EN",
        "Technique_EN",
        "Findings_EN",
        "Impressions_EN",
    )
    for rows, report_name, label_name in (
        (train, "train_reports.csv", "train_predicted_labels.csv"),
        (valid, "validation_reports.csv", "valid_predicted_labels.csv"),
    ):
        if not rows and report_name.startswith("validation"):
            continue
        write_csv(
            reports / report_name,
            header,
            [[v, "Cough.", "Non-contrast CT.", f, i] for v, f, i, _ in rows],
        )
        write_csv(
            labels / label_name, ("VolumeName", *CT_RATE_LABELS), [[v, *y] for v, _, _, y in rows]
        )
    return root


CSV_LABELS = ("Effusion", "Nodule", "Emphysema")


def csv_rows(n: int, *, start: int = 0, prefix: str = "acc") -> list[list[object]]:
    """Rows of a labelled CSV (AccessionNo, report_text, 3 labels) whose text states the labels."""
    rows = []
    for i in range(start, start + n):
        y = [(i >> k) & 1 for k in range(len(CSV_LABELS))]
        said = [name.lower() for name, v in zip(CSV_LABELS, y, strict=True) if v] or [
            "nothing acute"
        ]
        text = f"Report number {i}.\nFindings: {', '.join(said)}."
        rows.append([f"{prefix}{i}", text, *y])
    return rows


def write_csv_folder(
    root: Path, *, n_train: int = 40, n_val: int | None = None, n_test: int | None = None
) -> Path:
    header = ("AccessionNo", "report_text", *CSV_LABELS)
    write_csv(root / "train.csv", header, csv_rows(n_train))
    if n_val is not None:
        write_csv(root / "val.csv", header, csv_rows(n_val, start=1000))
    if n_test is not None:
        write_csv(root / "test.csv", header, csv_rows(n_test, start=2000))
    return root


def _make_corpus(fmt: str, root: Path) -> Path:
    if fmt == "csv":
        return write_csv_folder(root, n_train=50)
    return write_synthetic(fmt, root, n=80 if fmt == "mimic-cxr" else 60, seed=3)


@pytest.fixture
def build() -> SimpleNamespace:
    """The corpus builders of this module."""
    return SimpleNamespace(
        write_csv=write_csv,
        mimic_report=mimic_report,
        MimicStudy=MimicStudy,
        write_mimic=write_mimic,
        ct_rate_labels=ct_rate_labels,
        write_ct_rate=write_ct_rate,
        CSV_LABELS=CSV_LABELS,
        csv_rows=csv_rows,
        write_csv_folder=write_csv_folder,
    )


@pytest.fixture
def make_corpus() -> Callable[[str, Path], Path]:
    """Write a small corpus of a given format into a folder, in the real layout."""
    return _make_corpus


@pytest.fixture(scope="session")
def synthetic_mimic_4000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic("mimic-cxr", tmp_path_factory.mktemp("synth") / "cxr", n=4000, seed=0)


@pytest.fixture(scope="session")
def synthetic_ct_4000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic("ct-rate", tmp_path_factory.mktemp("synth") / "ct", n=4000, seed=0)
