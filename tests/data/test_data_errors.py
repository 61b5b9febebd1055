"""User-facing data errors: one line, naming file/column/value and fix, never report text."""

from __future__ import annotations

import pytest

from dpsweep.data import CHEXPERT_LABELS, FORMATS, load_corpus
from dpsweep.errors import DataError, UserInputError

SECRET = "Patient Jane Roe has a secret left pleural effusion"


def _raises(fmt: str, path, *, match: str) -> str:
    with pytest.raises(DataError) as err:
        load_corpus(fmt, path)
    message = str(err.value)
    assert isinstance(err.value, UserInputError)
    assert "\n" not in message, message
    assert "secret" not in message.lower() and "Roe" not in message, message
    assert match in message, message
    return message


@pytest.mark.parametrize("fmt", ["mimic-cxr", "ct-rate", "csv"])
def test_missing_path(fmt: str, tmp_path) -> None:
    missing = tmp_path / "nowhere"
    message = _raises(fmt, missing, match=str(missing))
    assert "does not exist" in message and "pass" in message


def test_unknown_format(tmp_path) -> None:
    message = _raises("mimic", tmp_path, match="'mimic'")
    for name in FORMATS:
        assert name in message


def test_mimic_missing_label_columns(tmp_path, build) -> None:
    root = build.write_mimic(
        tmp_path / "cxr",
        [build.MimicStudy(10000001, 50000001, "train", build.mimic_report(findings=SECRET))],
    )
    build.write_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv.gz",
        ("subject_id", "study_id", *CHEXPERT_LABELS[:5]),
        [[10000001, 50000001, 1, 0, 0, 0, 0]],
    )
    _raises("mimic-cxr", root, match="lacks column 'Fracture'")


def test_mimic_missing_label_file(tmp_path, build) -> None:
    root = build.write_mimic(
        tmp_path / "cxr", [build.MimicStudy(10000001, 50000001, "train", SECRET)]
    )
    (root / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    _raises(
        "mimic-cxr",
        root,
        match="no mimic-cxr-2.0.0-chexpert.csv or mimic-cxr-2.0.0-chexpert.csv.gz",
    )


def test_mimic_bad_label_value(tmp_path, build) -> None:
    study = build.MimicStudy(
        10000001, 50000001, "train", SECRET, {"Edema": "2.0", "Atelectasis": "1.0"}
    )
    message = _raises(
        "mimic-cxr", build.write_mimic(tmp_path / "cxr", [study]), match="column 'Edema'"
    )
    assert "data row 1" in message and "'2.0'" in message and "-1.0 (uncertain)" in message


def test_csv_non_binary_label_names_row_not_text(tmp_path, build) -> None:
    rows = [["a1", SECRET, 0, 1, 0], ["a2", SECRET, 1, 3, 0]]
    build.write_csv(
        tmp_path / "r" / "train.csv", ("AccessionNo", "report_text", *build.CSV_LABELS), rows
    )
    message = _raises("csv", tmp_path / "r", match="data row 2 column 'Nodule' holds '3'")
    assert "train.csv" in message


def test_csv_text_in_a_label_column_is_not_shown(tmp_path, build) -> None:
    rows = [["a1", "fine", 0, 1, 0], ["a2", "fine", 1, SECRET, 0]]
    build.write_csv(
        tmp_path / "r" / "train.csv", ("AccessionNo", "report_text", *build.CSV_LABELS), rows
    )
    _raises("csv", tmp_path / "r", match=f"column 'Nodule' holds a value of {len(SECRET)} characters (not shown")


def test_csv_without_recognisable_text_column(tmp_path, build) -> None:
    rows = [["a1", SECRET, "other words", 1], ["a2", SECRET, "more words", 0]]
    build.write_csv(tmp_path / "r" / "train.csv", ("id", "body", "notes", "A"), rows)
    _raises("csv", tmp_path / "r", match="rename the report text column to report_text")


def test_csv_folder_without_train_csv(tmp_path) -> None:
    (tmp_path / "r").mkdir()
    _raises("csv", tmp_path / "r", match="has no train.csv")


def test_ragged_csv_row(tmp_path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "train.csv").write_text(f'id,report_text,A\n1,"{SECRET}",1\n2,{SECRET},0,extra\n')
    _raises("csv", folder, match="data row 2 (line 3) has 4 fields but the header has 3")


def test_ct_rate_without_dataset_folder(tmp_path) -> None:
    (tmp_path / "ct").mkdir()
    _raises("ct-rate", tmp_path / "ct", match="has no dataset/radiology_text_reports/")


def test_ct_rate_bad_label_value(tmp_path, build) -> None:
    labels = build.ct_rate_labels()
    labels[3] = ""
    build.write_ct_rate(
        tmp_path / "ct",
        [
            ("train_1_a_1.nii.gz", SECRET, SECRET, labels),
            ("train_2_a_1.nii.gz", SECRET, SECRET, build.ct_rate_labels()),
        ],
    )
    _raises(
        "ct-rate", tmp_path / "ct", match="column 'Pericardial effusion' holds ''; CT-RATE labels"
    )
