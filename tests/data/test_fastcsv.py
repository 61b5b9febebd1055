"""MIMIC-CXR's CSV fast path: the row-by-row reader's answer, or None (then that reader's error)."""

from __future__ import annotations

import numpy as np
import pytest

from dpsweep.data.csvio import read_table, write_table
from dpsweep.data.fastcsv import fast_labels, fast_split
from dpsweep.data.labels import CHEXPERT_LABELS
from dpsweep.data.mimic_cxr import SPLIT_NAMES, read_labels, read_split

ALLOWED = (1.0, 0.0, -1.0)


def _labels_file(path, rows):
    write_table(path, ("subject_id", "study_id", *CHEXPERT_LABELS), rows)
    return path


def _row(subject, study, value=""):
    return [subject, study, value, *[""] * (len(CHEXPERT_LABELS) - 1)]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_labels_fast_path_equals_the_row_reader(tmp_path, suffix):
    path = _labels_file(tmp_path / f"l{suffix}", [_row(" 10 ", "50.0", "1.0"), _row(10, 51, "-1"), _row(11, 52, " ")])
    fast = fast_labels(path, CHEXPERT_LABELS, allowed=ALLOWED, blank=0.0)
    slow = read_labels(read_table(path, fmt="mimic-cxr", kind="labels file"))
    assert fast is not None and fast.keys() == slow.keys()
    for study in slow:
        assert fast[study][0] == slow[study][0] and np.array_equal(fast[study][1], slow[study][1])


@pytest.mark.parametrize("rows", [
    [_row(10, 50, "2.0")],  # a label outside the allowed values
    [_row(10, 50, "yes")],  # not a number
    [_row(10, "5x", "1.0")],  # an id that is not a whole number
    [_row(10, 50), _row(11, 50)],  # a study twice
])
def test_labels_fast_path_declines_what_the_row_reader_refuses(tmp_path, rows):
    assert fast_labels(_labels_file(tmp_path / "l.csv", rows), CHEXPERT_LABELS, allowed=ALLOWED, blank=0.0) is None


def test_labels_fast_path_declines_a_padded_or_missing_header(tmp_path):
    padded = tmp_path / "p.csv"
    write_table(padded, (" subject_id", "study_id", *CHEXPERT_LABELS), [_row(10, 50)])
    missing = tmp_path / "m.csv"
    write_table(missing, ("subject_id", "study_id", *CHEXPERT_LABELS[:-1]), [_row(10, 50)[:-1]])
    assert fast_labels(padded, CHEXPERT_LABELS, allowed=ALLOWED, blank=0.0) is None
    assert fast_labels(missing, CHEXPERT_LABELS, allowed=ALLOWED, blank=0.0) is None


def test_split_fast_path_equals_the_row_reader_and_declines_conflicts(tmp_path):
    good = tmp_path / "s.csv.gz"
    write_table(good, ("dicom_id", "study_id", "subject_id", "split"),
                [["a", 50, 10, "train"], ["b", 50, 10, "train"], ["c", 51, 11, " Validate"], ["d", 52, 12, "test"]])
    assert fast_split(good, SPLIT_NAMES) == read_split(read_table(good, fmt="mimic-cxr", kind="split file"))
    conflict = tmp_path / "c.csv"
    write_table(conflict, ("dicom_id", "study_id", "subject_id", "split"), [["a", 50, 10, "train"], ["b", 50, 10, "test"]])
    assert fast_split(conflict, SPLIT_NAMES) is None
