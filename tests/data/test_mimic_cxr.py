"""MIMIC-CXR reader: image rows, label values, uncertain policy, sections, CSV locations."""

from __future__ import annotations

import numpy as np
import pytest

from dpsweep.data import CHEXPERT_LABELS, DataOptions, load_corpus
from dpsweep.errors import DataError

EFFUSION = CHEXPERT_LABELS.index("Pleural Effusion")
PNEUMONIA = CHEXPERT_LABELS.index("Pneumonia")
EDEMA = CHEXPERT_LABELS.index("Edema")


def _studies(build):
    """Six studies of four patients; study 1 has three images; sections vary."""
    S, report = build.MimicStudy, build.mimic_report
    return [
        S(
            10000001,
            50000001,
            "train",
            report(findings="Small left pleural effusion.", impression="Left effusion."),
            {"Pleural Effusion": "1.0", "Pneumonia": "-1.0", "Edema": ""},
            images=3,
        ),
        S(
            10000001,
            50000002,
            "train",
            report(impression="Cannot exclude pneumonia."),
            {"Pneumonia": "-1.0"},
        ),
        S(
            10000002,
            50000003,
            "train",
            report(findings="No pleural effusion."),
            {"Pleural Effusion": "0.0", "No Finding": "1.0"},
        ),
        S(
            11000003,
            50000004,
            "validate",
            report(other="The lungs are clear. No pneumothorax."),
            {"No Finding": "1.0", "Pneumothorax": "0.0"},
            images=2,
        ),
        S(
            12000004,
            50000005,
            "test",
            report(findings="Mild edema.", impression="Edema."),
            {"Edema": "1.0"},
        ),
        S(
            12000004,
            50000006,
            "test",
            report(findings="", impression="Stable."),
            {"No Finding": "1.0"},
        ),
    ]


@pytest.fixture
def mimic_root(tmp_path, build):
    return build.write_mimic(tmp_path / "cxr", _studies(build))


def _by_group(split, group):
    return [i for i, g in enumerate(split.groups) if g == group]


def test_image_rows_collapse_to_one_row_per_study(mimic_root) -> None:
    corpus = load_corpus("mimic-cxr", mimic_root)
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (3, 1, 2)
    assert corpus.train.groups == ["10000001", "10000001", "10000002"]
    assert corpus.val.groups == ["11000003"]
    assert corpus.label_names == CHEXPERT_LABELS


def test_blank_is_a_known_negative(mimic_root) -> None:
    corpus = load_corpus("mimic-cxr", mimic_root)
    assert corpus.train.labels[0, EDEMA] == 0 and corpus.train.mask[0, EDEMA]
    assert corpus.train.labels[0, EFFUSION] == 1
    assert corpus.train.mask.all() and corpus.train.labels[0].sum() == 1  # blank cells are 0, known


@pytest.mark.parametrize(
    ("policy", "value", "known"),
    [("zeros", 0.0, True), ("ones", 1.0, True), ("ignore", 0.0, False)],
)
def test_uncertain_policy(mimic_root, policy, value, known) -> None:
    corpus = load_corpus("mimic-cxr", mimic_root, DataOptions(uncertain_policy=policy))
    for row in (0, 1):  # both train studies of patient 10000001 hedge pneumonia
        assert corpus.train.labels[row, PNEUMONIA] == value
        assert corpus.train.mask[row, PNEUMONIA] == known
    assert corpus.train.labels[0, EFFUSION] == 1 and corpus.train.mask[0, EFFUSION]
    assert corpus.train.mask[2].all()


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            "both",
            [
                "Small left pleural effusion.\nLeft effusion.",
                "Cannot exclude pneumonia.",
                "No pleural effusion.",
            ],
        ),
        (
            "findings",
            ["Small left pleural effusion.", "Cannot exclude pneumonia.", "No pleural effusion."],
        ),
        ("impression", ["Left effusion.", "Cannot exclude pneumonia.", "No pleural effusion."]),
    ],
)
def test_sections_and_fallback_to_the_other_section(mimic_root, sections, expected) -> None:
    corpus = load_corpus("mimic-cxr", mimic_root, DataOptions(sections=sections))
    assert corpus.train.texts == expected


def test_report_without_either_section_falls_back_to_the_body(mimic_root) -> None:
    text = load_corpus("mimic-cxr", mimic_root, DataOptions(sections="findings")).val.texts[0]
    assert "The lungs are clear. No pneumothorax." in text
    assert "FINAL REPORT" not in text and "EXAMINATION:" in text


def test_empty_findings_falls_back_to_impression(mimic_root) -> None:
    corpus = load_corpus("mimic-cxr", mimic_root, DataOptions(sections="findings"))
    assert corpus.test.texts == ["Mild edema.", "Stable."]


def test_plain_csv_is_read_like_gzip(tmp_path, build) -> None:
    gz = load_corpus("mimic-cxr", build.write_mimic(tmp_path / "gz", _studies(build)))
    plain = load_corpus(
        "mimic-cxr", build.write_mimic(tmp_path / "plain", _studies(build), suffix=".csv")
    )
    assert gz.train.texts == plain.train.texts
    np.testing.assert_array_equal(gz.train.labels, plain.train.labels)


def test_csvs_in_the_parent_or_a_sibling_mimic_folder(tmp_path, build) -> None:
    root = tmp_path / "physionet" / "mimic-cxr" / "2.0.0"
    build.write_mimic(
        root, _studies(build), csv_dir=tmp_path / "physionet" / "mimic-cxr-jpg" / "2.0.0"
    )
    assert len(load_corpus("mimic-cxr", root).train) == 3
    parent = tmp_path / "flat" / "reports"
    build.write_mimic(parent, _studies(build), csv_dir=tmp_path / "flat")
    assert len(load_corpus("mimic-cxr", parent).train) == 3


def test_missing_reports_and_labels_are_skipped_and_counted(tmp_path, build) -> None:
    studies = _studies(build)
    studies[1].report = None  # a label row without a report file
    studies[2].labelled = False  # a report file without a label row
    corpus = load_corpus("mimic-cxr", build.write_mimic(tmp_path / "cxr", studies))
    assert len(corpus.train) == 1
    assert corpus.skipped == {
        "labelled studies without a report file": 1,
        "report files without labels": 1,
    }


def test_a_study_in_two_splits_is_refused(tmp_path, build) -> None:
    root = build.write_mimic(tmp_path / "cxr", _studies(build), suffix=".csv")
    with open(root / "mimic-cxr-2.0.0-split.csv", "a", encoding="utf-8") as handle:
        handle.write("extra-image,50000001,10000001,test\n")
    with pytest.raises(DataError, match=r"images of one study in both train \(data row 1\) and test") as err:
        load_corpus("mimic-cxr", root)
    assert "50000001" not in str(err.value)


def test_a_patient_in_two_splits_is_refused(tmp_path, build) -> None:
    studies = _studies(build)
    studies[1].split = "validate"
    with pytest.raises(
        DataError, match=r"1 patient group\(s\) appear in both the train and the val split"
    ) as err:
        load_corpus("mimic-cxr", build.write_mimic(tmp_path / "cxr", studies))
    assert "10000001" not in str(err.value)


def test_nothing_left_is_an_error(tmp_path, build) -> None:
    studies = _studies(build)
    for s in studies:
        s.report = None
    studies[0].report = build.mimic_report(findings="x")
    studies[0].subject, studies[0].study = 19999999, 59999999  # its own folder; no label row
    studies[0].labelled = False
    with pytest.raises(DataError, match="no train study"):
        load_corpus("mimic-cxr", build.write_mimic(tmp_path / "cxr", studies))
