"""Identifiers from the data never reach an error line, a log line or stderr.

Patient ids, study ids, MIMIC split cells, CT-RATE volume names and accession numbers are
patient data. Each case puts a sentinel into one id-bearing field of an otherwise valid
corpus, for every reader, and runs `dpsweep data inspect` in-process: the command either
reads the corpus (exit 0) or refuses it (exit 2, one line naming the row by position), and
the sentinel appears nowhere in what it prints or logs.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from dpsweep.cli import main
from dpsweep.data import CT_RATE_LABELS

SENTINEL = "PATIENT-SENTINEL-12345"
NUMERIC = "987654321"  # an id that passes as a number (MIMIC ids must be whole numbers)


def _edit(path: Path, edit: Callable[[list[list[str]]], None]) -> None:
    """Rewrite a plain CSV with `edit` applied to its rows (header first)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _set(column: str, value: str, *, row: int = 1) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        rows[row][rows[0].index(column)] = value
    return edit


def _copy_row(row: int, *, changes: dict[str, str]) -> Callable[[list[list[str]]], None]:
    """Append a copy of data row `row` with some cells changed."""
    def edit(rows: list[list[str]]) -> None:
        extra = list(rows[row])
        for column, value in changes.items():
            extra[rows[0].index(column)] = value
        rows.append(extra)
    return edit


# ---- corpora ------------------------------------------------------------------------------

def _mimic(tmp_path: Path, build) -> Path:
    S, report = build.MimicStudy, build.mimic_report
    studies = [S(10000000 + p, 50000000 + p, split, report(findings=f"Finding {p}.", impression="Stable."),
                 {"Edema": "1.0" if p % 2 else "0.0"})
               for p, split in enumerate(["train"] * 4 + ["validate"] * 2 + ["test"], start=1)]
    return build.write_mimic(tmp_path / "cxr", studies, suffix=".csv")


def _ct_rate(tmp_path: Path, build) -> Path:
    train = [(f"train_{p}_a_{r}.nii.gz", f"Findings {p}.", "Normal.", build.ct_rate_labels("Emphysema"
              if p % 2 else "Cardiomegaly")) for p in range(1, 7) for r in (1, 2)]
    valid = [(f"valid_{p}_a_1.nii.gz", f"Valid {p}.", "Normal.", build.ct_rate_labels()) for p in (1, 2)]
    return build.write_ct_rate(tmp_path / "ct", train, valid)


def _csv(tmp_path: Path, build) -> Path:
    root = tmp_path / "reports"
    header = ("patient_id", "AccessionNo", "report_text", *build.CSV_LABELS)
    rows = [[f"pat{i // 2}", f"acc{i}", text, *labels] for i, (_, text, *labels) in enumerate(build.csv_rows(20))]
    build.write_csv(root / "train.csv", header, rows)
    build.write_csv(root / "val.csv", header, [[f"pat{100 + i}", f"acc{100 + i}", t, *y]
                                              for i, (_, t, *y) in enumerate(build.csv_rows(6, start=100))])
    return root


MIMIC_LABELS = "mimic-cxr-2.0.0-chexpert.csv"
MIMIC_SPLIT = "mimic-cxr-2.0.0-split.csv"
CT_REPORTS = "dataset/radiology_text_reports/train_reports.csv"
CT_LABELS = "dataset/multi_abnormality_labels/train_predicted_labels.csv"
CT_VALID = "dataset/radiology_text_reports/validation_reports.csv"
CT_VALID_LABELS = "dataset/multi_abnormality_labels/valid_predicted_labels.csv"

# (reader, corpus builder, [(file, edit)], sentinel): one id-bearing field corrupted per case
CASES = {
    "mimic subject_id": ("mimic-cxr", _mimic, [(MIMIC_LABELS, _set("subject_id", SENTINEL))], SENTINEL),
    "mimic study_id (labels)": ("mimic-cxr", _mimic, [(MIMIC_LABELS, _set("study_id", SENTINEL))], SENTINEL),
    "mimic study_id (split)": ("mimic-cxr", _mimic, [(MIMIC_SPLIT, _set("study_id", SENTINEL))], SENTINEL),
    "mimic split cell": ("mimic-cxr", _mimic, [(MIMIC_SPLIT, _set("split", SENTINEL))], SENTINEL),
    "mimic split cell (number)": ("mimic-cxr", _mimic, [(MIMIC_SPLIT, _set("split", NUMERIC))], NUMERIC),
    "mimic dicom_id": ("mimic-cxr", _mimic, [(MIMIC_SPLIT, _set("dicom_id", SENTINEL))], SENTINEL),
    "mimic label cell": ("mimic-cxr", _mimic, [(MIMIC_LABELS, _set("Edema", SENTINEL))], SENTINEL),
    "mimic label cell (number)": ("mimic-cxr", _mimic, [(MIMIC_LABELS, _set("Edema", NUMERIC))], NUMERIC),
    "mimic study listed twice": ("mimic-cxr", _mimic, [
        (MIMIC_LABELS, _set("study_id", NUMERIC)), (MIMIC_LABELS, _copy_row(1, changes={}))], NUMERIC),
    "mimic study in two splits": ("mimic-cxr", _mimic, [
        (MIMIC_SPLIT, _set("study_id", NUMERIC)),
        (MIMIC_SPLIT, _copy_row(1, changes={"split": "test"}))], NUMERIC),
    "mimic patient in two splits": ("mimic-cxr", _mimic, [
        (MIMIC_LABELS, _set("subject_id", NUMERIC, row=1)),
        (MIMIC_LABELS, _set("subject_id", NUMERIC, row=5))], NUMERIC),
    "ct-rate volume name (reports)": ("ct-rate", _ct_rate, [(CT_REPORTS, _set("VolumeName", SENTINEL))],
                                      SENTINEL),
    "ct-rate volume name (labels)": ("ct-rate", _ct_rate, [(CT_LABELS, _set("VolumeName", SENTINEL))],
                                     SENTINEL),
    "ct-rate label cell": ("ct-rate", _ct_rate, [(CT_LABELS, _set(CT_RATE_LABELS[0], SENTINEL))], SENTINEL),
    "ct-rate patient in train and test": ("ct-rate", _ct_rate, [
        (CT_VALID, _set("VolumeName", f"train_{NUMERIC}_a_1.nii.gz")),
        (CT_VALID_LABELS, _set("VolumeName", f"train_{NUMERIC}_a_1.nii.gz")),
        (CT_REPORTS, _set("VolumeName", f"train_{NUMERIC}_b_1.nii.gz")),
        (CT_LABELS, _set("VolumeName", f"train_{NUMERIC}_b_1.nii.gz"))], NUMERIC),
    "csv patient in train and val": ("csv", _csv, [
        ("train.csv", _set("patient_id", SENTINEL)), ("val.csv", _set("patient_id", SENTINEL))], SENTINEL),
    "csv accession number in a label cell": ("csv", _csv, [("train.csv", _set("Nodule", NUMERIC, row=3))],
                                             NUMERIC),
    "csv id in a label cell": ("csv", _csv, [("train.csv", _set("Nodule", SENTINEL, row=3))], SENTINEL),
    "csv accession number": ("csv", _csv, [("train.csv", _set("AccessionNo", SENTINEL))], SENTINEL),
}


# Fields no check reads: the corpus loads, and the id must still appear nowhere
LOADS = {"mimic dicom_id", "csv accession number"}


@pytest.mark.parametrize("case", list(CASES))
def test_no_identifier_reaches_an_error_or_a_log(case, tmp_path, build, capsys, caplog):
    fmt, make, edits, sentinel = CASES[case]
    root = make(tmp_path, build)
    for name, edit in edits:
        _edit(root / name, edit)
    caplog.set_level(logging.DEBUG)
    code = main(["data", "inspect", "--format", fmt, "--path", str(root)])
    out, err = capsys.readouterr()
    assert code == (0 if case in LOADS else 2), err  # 2: the corrupt field was reached and refused
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "data row" in err or "patient group" in err, err  # named by position or count
    for where, text in (("stdout", out), ("stderr", err), ("logs", caplog.text)):
        assert sentinel not in text, f"{case}: the identifier reached {where}: {text}"


def test_label_values_that_cannot_be_ids_are_still_shown(tmp_path, build, capsys):
    root = _csv(tmp_path, build)
    _edit(root / "train.csv", _set("Nodule", "2", row=3))
    assert main(["data", "inspect", "--format", "csv", "--path", str(root)]) == 2
    assert "data row 3 column 'Nodule' holds '2'" in capsys.readouterr().err
