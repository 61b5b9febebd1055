"""CT-RATE reader: reconstructions merged per scan, validation as test, val by patient."""

from __future__ import annotations

import numpy as np
import pytest

from dpsweep.data import CT_RATE_LABELS, DataOptions, load_corpus
from dpsweep.errors import DataError


def _train_rows(build, n_patients: int = 10):
    rows = []
    for p in range(1, n_patients + 1):
        for scan in "ab"[: 1 + p % 2]:
            y = build.ct_rate_labels("Emphysema") if p % 3 == 0 else build.ct_rate_labels()
            for recon in (1, 2):
                rows.append(
                    (
                        f"train_{p}_{scan}_{recon}.nii.gz",
                        f"Findings of patient {p} scan {scan}.",
                        "Emphysema." if p % 3 == 0 else "Normal.",
                        y,
                    )
                )
    return rows


@pytest.fixture
def ct_root(tmp_path, build):
    valid = [
        (
            "valid_1_a_1.nii.gz",
            "Valid findings.",
            "Cardiomegaly.",
            build.ct_rate_labels("Cardiomegaly"),
        ),
        (
            "valid_1_a_2.nii.gz",
            "Valid findings.",
            "Cardiomegaly.",
            build.ct_rate_labels("Cardiomegaly"),
        ),
        ("valid_2_a_1.nii.gz", "", "Only impression.", build.ct_rate_labels()),
    ]
    return build.write_ct_rate(tmp_path / "ctrate", _train_rows(build), valid)


def test_reconstructions_merge_to_one_row_per_scan(ct_root) -> None:
    corpus = load_corpus("ct-rate", ct_root)
    n_scans = sum(1 + p % 2 for p in range(1, 11))
    assert len(corpus.train) + len(corpus.val) == n_scans
    assert corpus.label_names == CT_RATE_LABELS
    assert corpus.skipped["duplicate report rows of reconstructions merged"] == n_scans + 1
    assert all(
        g.startswith("train_") and g.count("_") == 1
        for g in corpus.train.groups + corpus.val.groups
    )


def test_official_validation_becomes_test(ct_root) -> None:
    corpus = load_corpus("ct-rate", ct_root, DataOptions(sections="findings"))
    assert corpus.test is not None
    assert corpus.test.groups == ["valid_1", "valid_2"]
    assert corpus.test.texts == ["Valid findings.", "Only impression."]  # empty findings fall back
    assert corpus.test.labels[0, CT_RATE_LABELS.index("Cardiomegaly")] == 1


def test_sections(ct_root) -> None:
    both = load_corpus("ct-rate", ct_root, DataOptions(sections="both")).test.texts[0]
    impression = load_corpus("ct-rate", ct_root, DataOptions(sections="impression")).test.texts[0]
    assert both == "Valid findings.\nCardiomegaly." and impression == "Cardiomegaly."


def test_val_is_carved_from_train_by_patient_and_seed(ct_root) -> None:
    a = load_corpus("ct-rate", ct_root, DataOptions(seed=1, val_fraction=0.3))
    b = load_corpus("ct-rate", ct_root, DataOptions(seed=2, val_fraction=0.3))
    assert not set(a.train.groups) & set(a.val.groups)
    assert set(a.val.groups) != set(b.val.groups)
    assert 0.15 <= len(a.val) / (len(a.train) + len(a.val)) <= 0.45


def test_no_validation_files_means_no_test(tmp_path, build) -> None:
    corpus = load_corpus("ct-rate", build.write_ct_rate(tmp_path / "ct", _train_rows(build)))
    assert corpus.test is None


def test_missing_label_column_names_file_and_column(tmp_path, build) -> None:
    root = build.write_ct_rate(tmp_path / "ct", _train_rows(build))
    path = root / "dataset" / "multi_abnormality_labels" / "train_predicted_labels.csv"
    build.write_csv(
        path,
        ("VolumeName", *CT_RATE_LABELS[:7], *CT_RATE_LABELS[8:]),
        [[v, *y[:7], *y[8:]] for v, _, _, y in _train_rows(build)],
    )
    with pytest.raises(DataError) as err:
        load_corpus("ct-rate", root)
    assert str(err.value) == (
        f"ct-rate: labels file {path} lacks column 'Emphysema'; expected the 18 "
        "CT-RATE label columns after VolumeName"
    )


def test_bad_volume_name(tmp_path, build) -> None:
    rows = _train_rows(build)
    rows[0] = ("scan one.nii.gz", *rows[0][1:])
    with pytest.raises(
        DataError, match=r"data row 1 column 'VolumeName' holds a name \(not shown\) that is not"
    ):
        load_corpus("ct-rate", build.write_ct_rate(tmp_path / "ct", rows))


def test_labels_of_first_reconstruction_are_kept(tmp_path, build) -> None:
    rows = _train_rows(build)
    rows[1] = (*rows[1][:3], build.ct_rate_labels("Emphysema", "Cardiomegaly"))  # recon 2 disagrees
    corpus = load_corpus(
        "ct-rate", build.write_ct_rate(tmp_path / "ct", rows), DataOptions(val_fraction=0.1)
    )
    merged = np.concatenate([corpus.train.labels, corpus.val.labels])
    assert merged[:, CT_RATE_LABELS.index("Cardiomegaly")].sum() == 0
    assert sum(v for k, v in corpus.skipped.items() if "differ" in k) == 1
