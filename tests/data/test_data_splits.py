"""Patient-aware validation carving and report section parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsweep.data.sections import choose_text, parse_report
from dpsweep.data.splits import carve_validation, check_disjoint
from dpsweep.errors import DataError


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.integers(0, 30), min_size=2, max_size=200),
    fraction=st.floats(0.05, 0.85),
    seed=st.integers(0, 2**31),
)
def test_carving_keeps_groups_whole_and_is_deterministic(groups, fraction, seed) -> None:
    names = [f"p{g}" for g in groups]
    if len(set(names)) < 2:
        with pytest.raises(DataError):
            carve_validation(names, val_fraction=fraction, seed=seed, source="t")
        return
    is_val = carve_validation(names, val_fraction=fraction, seed=seed, source="t")
    assert is_val.any() and not is_val.all()
    val = {n for n, v in zip(names, is_val, strict=True) if v}
    train = {n for n, v in zip(names, is_val, strict=True) if not v}
    assert not val & train
    np.testing.assert_array_equal(
        is_val, carve_validation(names, val_fraction=fraction, seed=seed, source="t")
    )


def test_carving_one_row_per_group_hits_the_fraction() -> None:
    is_val = carve_validation([str(i) for i in range(800)], val_fraction=0.2, seed=0, source="t")
    assert is_val.sum() == 160


def test_check_disjoint() -> None:
    check_disjoint({"train": ["a", "b"], "val": ["c"]}, source="s", fix="f")
    with pytest.raises(
        DataError, match=r"1 patient group\(s\) appear in both the train and the val split \(ids not shown\); f"
    ):
        check_disjoint({"train": ["a", "b"], "val": ["b"]}, source="s", fix="f")


REPORT = "\n".join(
    [  # MIMIC style: lines led by a space, blank lines holding one space
        "WET READ: ___ ___ 9:15 AM",
        "  preliminary",
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___ with cough",
        " ",
        " FINDINGS: ",
        " ",
        " Heart size is normal.  No pleural",
        " effusion.",
        " ",
        " IMPRESSION: ",
        " ",
        " No acute process.",
        " ",
        " NOTIFICATION:  Discussed with Dr. ___ at 10:30.",
        "",
    ]
)


def test_parse_report_sections_and_body() -> None:
    parts = parse_report(REPORT)
    assert parts.findings == "Heart size is normal. No pleural effusion."
    assert parts.impression == "No acute process."
    assert (
        parts.body.startswith("EXAMINATION: CHEST (PA AND LAT)") and "preliminary" not in parts.body
    )


@pytest.mark.parametrize(
    ("sections", "findings", "impression", "expected"),
    [
        ("both", "F.", "I.", "F.\nI."),
        ("both", "", "I.", "I."),
        ("findings", "", "I.", "I."),
        ("impression", "F.", "", "F."),
        ("findings", "", "", "body"),
    ],
)
def test_choose_text(sections, findings, impression, expected) -> None:
    assert (
        choose_text(sections, findings=findings, impression=impression, fallback="body") == expected
    )
