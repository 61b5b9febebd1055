"""Synthetic corpora: real layout, label prevalence, text-label consistency, determinism."""

from __future__ import annotations

import csv
import gzip
import re

import numpy as np
import pytest

from dpsweep.data import (
    CHEXPERT_LABELS,
    CT_RATE_LABELS,
    DataOptions,
    load_corpus,
    summarize,
    write_synthetic,
)
from dpsweep.errors import ConfigError, DataError

NON_DEVICE_PATHOLOGIES = [x for x in CHEXPERT_LABELS if x not in ("No Finding", "Support Devices")]


def _chexpert_rows(root):
    with gzip.open(
        root / "mimic-cxr-2.0.0-chexpert.csv.gz", "rt", encoding="utf-8", newline=""
    ) as f:
        return list(csv.DictReader(f))


def test_mimic_layout_is_the_real_one(synthetic_mimic_4000) -> None:
    root = synthetic_mimic_4000
    reports = sorted((root / "files").glob("p1?/p1???????/s5???????.txt"))
    assert len(reports) == 4000
    assert all(p.parent.name[:3] == p.parent.parent.name for p in reports[:50])
    text = reports[0].read_text()
    assert text.startswith("                                 FINAL REPORT\n")
    assert " IMPRESSION:" in text and "___" in text
    with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "rt", newline="") as f:
        split_rows = list(csv.DictReader(f))
    assert list(split_rows[0]) == ["dicom_id", "study_id", "subject_id", "split"]
    assert len(split_rows) > 4000 and {r["split"] for r in split_rows} == {
        "train",
        "validate",
        "test",
    }


def test_mimic_prevalence_and_no_finding_rule(synthetic_mimic_4000) -> None:
    rows = _chexpert_rows(synthetic_mimic_4000)
    assert len(rows) == 4000 and list(rows[0])[:2] == ["subject_id", "study_id"]
    positive = {x: np.mean([r[x] == "1.0" for r in rows]) for x in CHEXPERT_LABELS}
    for rare in ("Fracture", "Pleural Other", "Pneumothorax"):
        assert 0.005 <= positive[rare] <= 0.04, (rare, positive[rare])
    assert 0.2 <= positive["No Finding"] <= 0.5
    assert np.mean([r["Pneumonia"] == "-1.0" for r in rows]) > 0.02  # uncertain mentions exist
    assert np.mean([r["Pleural Effusion"] == "0.0" for r in rows]) > 0.3  # explicit negatives
    for r in rows:
        stated = any(r[x] in ("1.0", "-1.0") for x in NON_DEVICE_PATHOLOGIES)
        assert (r["No Finding"] == "1.0") == (not stated)
        assert r["No Finding"] in ("1.0", "")


def test_mimic_labels_co_occur(synthetic_mimic_4000) -> None:
    rows = _chexpert_rows(synthetic_mimic_4000)

    def p(label, given=None):
        chosen = [r for r in rows if given is None or r[given] == "1.0"]
        return np.mean([r[label] == "1.0" for r in chosen])

    assert p("Edema", "Cardiomegaly") > 2 * p("Edema")
    assert p("Consolidation", "Pneumonia") > 3 * p("Consolidation")


def test_mimic_read_back_and_patient_split(synthetic_mimic_4000) -> None:
    corpus = load_corpus("mimic-cxr", synthetic_mimic_4000)
    sizes = summarize(corpus)["splits"]
    assert sum(s["n"] for s in sizes.values()) == 4000 and corpus.skipped == {}
    assert 0.85 <= sizes["train"]["n"] / 4000 <= 0.95
    assert sizes["train"]["groups"] < sizes["train"]["n"]  # several studies per patient
    words = np.array([len(t.split()) for t in corpus.train.texts])
    assert np.median(words) < 90 and len(set(corpus.train.texts)) > 0.8 * len(corpus.train)


@pytest.mark.parametrize(
    ("label", "word"),
    [
        ("Pneumothorax", "pneumothorax"),
        ("Pneumonia", "pneumonia"),
        ("Pleural Effusion", "effusion"),
    ],
)
def test_mimic_text_states_its_labels(synthetic_mimic_4000, label, word) -> None:
    corpus = load_corpus("mimic-cxr", synthetic_mimic_4000, DataOptions(uncertain_policy="ignore"))
    j = CHEXPERT_LABELS.index(label)
    for text, y, known in zip(
        corpus.train.texts, corpus.train.labels[:, j], corpus.train.mask[:, j], strict=True
    ):
        sentences = [s.lower() for s in re.split(r"(?<=\.)\s+", text) if word in s.lower()]
        hedged = [s for s in sentences if re.search(r"possibl|may |cannot", s)]
        negated = [s for s in sentences if re.search(r"\bno\b", s) and s not in hedged]
        stated = [s for s in sentences if s not in hedged and s not in negated]
        assert bool(stated) == (known and y == 1)
        assert bool(hedged) == (not known)


def test_ct_rate_layout_prevalence_and_read_back(synthetic_ct_4000) -> None:
    root = synthetic_ct_4000
    with open(
        root / "dataset" / "multi_abnormality_labels" / "train_predicted_labels.csv", newline=""
    ) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["VolumeName", *CT_RATE_LABELS]
    assert len(rows) > len({r["VolumeName"].rsplit("_", 1)[0] for r in rows})  # reconstructions
    corpus = load_corpus("ct-rate", root)
    labels = np.concatenate([s.labels for s in corpus.splits().values()])
    assert len(labels) == 4000
    prevalence = dict(zip(CT_RATE_LABELS, labels.mean(axis=0), strict=True))
    for rare in ("Pericardial effusion", "Hiatal hernia", "Interlobular septal thickening"):
        assert 0.005 <= prevalence[rare] <= 0.04, (rare, prevalence[rare])
    assert 0.1 <= len(corpus.test) / 4000 <= 0.2
    assert all(g.startswith("valid_") for g in corpus.test.groups)


@pytest.mark.parametrize("fmt", ["mimic-cxr", "ct-rate"])
def test_deterministic_for_a_seed(fmt, tmp_path) -> None:
    a = load_corpus(fmt, write_synthetic(fmt, tmp_path / "a", n=60, seed=7))
    b = load_corpus(fmt, write_synthetic(fmt, tmp_path / "b", n=60, seed=7))
    c = load_corpus(fmt, write_synthetic(fmt, tmp_path / "c", n=60, seed=8))
    assert a.train.texts == b.train.texts and a.train.groups == b.train.groups
    np.testing.assert_array_equal(a.train.labels, b.train.labels)
    assert a.train.texts != c.train.texts


def test_labels_files_are_byte_identical_for_a_seed(tmp_path) -> None:
    for name in ("a", "b"):
        write_synthetic("mimic-cxr", tmp_path / name, n=30, seed=1)
    for stem in ("mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"):
        assert (tmp_path / "a" / stem).read_bytes() == (tmp_path / "b" / stem).read_bytes()


def test_refuses_to_mix_with_an_earlier_corpus(tmp_path) -> None:
    write_synthetic("ct-rate", tmp_path / "ct", n=30, seed=0)
    with pytest.raises(DataError, match="already holds dataset/"):
        write_synthetic("ct-rate", tmp_path / "ct", n=30, seed=0)


@pytest.mark.parametrize(
    ("fmt", "n", "seed"),
    [("csv", 100, 0), ("mimic-cxr", 9, 0), ("ct-rate", 100, -1), ("ct-rate", 100.0, 0)],
)
def test_bad_arguments(fmt, n, seed, tmp_path) -> None:
    with pytest.raises(ConfigError):
        write_synthetic(fmt, tmp_path / "x", n=n, seed=seed)


@pytest.mark.parametrize("fmt", ["mimic-cxr", "ct-rate"])
def test_smallest_corpus_still_has_train_and_val(fmt, tmp_path) -> None:
    corpus = load_corpus(fmt, write_synthetic(fmt, tmp_path / "s", n=10, seed=0))
    assert len(corpus.train) and len(corpus.val)
