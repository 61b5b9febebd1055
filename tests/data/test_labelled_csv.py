"""Labelled-CSV folder reader: column detection, optional val/test files, real reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpsweep.data import CT_RATE_LABELS, DataOptions, load_corpus, summarize
from dpsweep.errors import DataError

SHARED_CT_CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "ct-clip-text"


def test_without_val_file_val_is_carved_from_train(tmp_path, build) -> None:
    root = build.write_csv_folder(tmp_path / "reports", n_train=50)
    corpus = load_corpus("csv", root, DataOptions(val_fraction=0.2, seed=0))
    assert corpus.name == "reports" and corpus.format == "csv"
    assert corpus.label_names == build.CSV_LABELS
    assert (len(corpus.train), len(corpus.val), corpus.test) == (40, 10, None)
    assert (
        corpus.train.texts[0] == "Report number 0. Findings: nothing acute."
    )  # multi-line field read whole
    other = load_corpus("csv", root, DataOptions(val_fraction=0.2, seed=1))
    assert set(other.val.groups) != set(corpus.val.groups)


def test_val_and_test_files_are_used(tmp_path, build) -> None:
    root = build.write_csv_folder(tmp_path / "reports", n_train=30, n_val=7, n_test=5)
    corpus = load_corpus("csv", root)
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (30, 7, 5)
    assert corpus.val.groups[0] == "acc1000" and corpus.test.groups[0] == "acc2000"
    i = corpus.test.groups.index("acc2003")
    np.testing.assert_array_equal(corpus.test.labels[i], [(2003 >> k) & 1 for k in range(3)])


def test_labels_follow_the_columns(tmp_path, build) -> None:
    corpus = load_corpus("csv", build.write_csv_folder(tmp_path / "r", n_train=16, n_val=8))
    for text, labels in zip(corpus.val.texts, corpus.val.labels, strict=True):
        said = text.split("Findings: ")[1]
        assert [name.lower() in said for name in build.CSV_LABELS] == [bool(v) for v in labels]


def test_blank_label_is_masked_and_row_index_groups_without_id(tmp_path, build) -> None:
    build.write_csv(
        tmp_path / "r" / "train.csv",
        ("text", "A", "B"),
        [[f"report {i}", i % 2, "" if i == 3 else 1] for i in range(10)],
    )
    corpus = load_corpus("csv", tmp_path / "r", DataOptions(val_fraction=0.3))
    split = corpus.train if "train-row-4" in corpus.train.groups else corpus.val
    row = split.groups.index("train-row-4")
    assert not split.mask[row, 1] and split.labels[row, 1] == 0 and split.mask[row, 0]
    assert (
        summarize(corpus)["splits"]["train"]["labels"]["B"]["masked"]
        + summarize(corpus)["splits"]["val"]["labels"]["B"]["masked"]
        == 1
    )


def test_single_non_numeric_column_is_the_text(tmp_path, build) -> None:
    build.write_csv(
        tmp_path / "r" / "train.csv",
        ("patient_id", "narrative", "A"),
        [[f"p{i // 2}", f"note {i}", i % 2] for i in range(12)],
    )
    corpus = load_corpus("csv", tmp_path / "r")
    assert corpus.label_names == ("A",)
    assert not set(corpus.train.groups) & set(corpus.val.groups)
    assert all(g.startswith("p") for g in corpus.train.groups)


def test_label_columns_must_match_across_files(tmp_path, build) -> None:
    root = build.write_csv_folder(tmp_path / "r", n_train=10)
    build.write_csv(
        root / "val.csv",
        ("AccessionNo", "report_text", "Effusion", "Emphysema"),
        [["v1", "some text", 0, 1]],
    )
    with pytest.raises(DataError) as err:
        load_corpus("csv", root)
    assert str(err.value) == (
        f"csv: file {root / 'val.csv'} lacks label column 'Nodule' of train.csv; "
        "give every file the same label columns"
    )


def test_extra_label_column_in_test_file(tmp_path, build) -> None:
    root = build.write_csv_folder(tmp_path / "r", n_train=10, n_val=3)
    build.write_csv(
        root / "test.csv",
        ("AccessionNo", "report_text", *build.CSV_LABELS, "Mass"),
        [["t1", "text", 0, 0, 0, 1]],
    )
    with pytest.raises(DataError, match="has label column 'Mass', which train.csv lacks"):
        load_corpus("csv", root)


@pytest.mark.realdata
def test_real_ct_clip_reports() -> None:
    if not (SHARED_CT_CLIP / "train.csv").is_file():
        pytest.skip(
            f"real data absent: {SHARED_CT_CLIP / 'train.csv'} (the shared datasets folder)"
        )
    corpus = load_corpus("csv", SHARED_CT_CLIP, DataOptions(val_fraction=0.2, seed=0))
    assert corpus.label_names == CT_RATE_LABELS
    assert len(corpus.train) + len(corpus.val) == 800
    assert 620 <= len(corpus.train) <= 660 and corpus.test is None
    assert corpus.train.mask.all() and corpus.val.mask.all()
    assert not set(corpus.train.groups) & set(corpus.val.groups)
    positives = summarize(corpus)["splits"]["train"]["labels"]["Lung nodule"]["positives"]
    assert 0 < positives < len(corpus.train)
