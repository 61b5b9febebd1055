"""Metrics agree with scikit-learn where no label is masked; masks drop entries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from dpsweep.train.metrics import evaluate, floors, tune_thresholds

NAMES = tuple(f"l{i}" for i in range(5))


@pytest.mark.parametrize("seed", range(5))
def test_f1_matches_sklearn_without_mask(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((60, 5)) < [0.5, 0.3, 0.1, 0.05, 0.4]).astype(np.float32)
    labels[0, :] = 1  # every label has a positive
    probs = np.clip(labels * 0.6 + rng.random((60, 5)) * 0.5, 0, 1)
    mask = np.ones_like(labels, dtype=bool)
    m = evaluate(probs, labels, mask, NAMES)
    pred = probs >= 0.5
    assert m.weighted_f1 == pytest.approx(f1_score(labels, pred, average="weighted", zero_division=0))
    assert m.macro_f1 == pytest.approx(f1_score(labels, pred, average="macro", zero_division=0))
    assert m.micro_f1 == pytest.approx(f1_score(labels, pred, average="micro", zero_division=0))
    per = f1_score(labels, pred, average=None, zero_division=0)
    assert list(m.per_label_f1.values()) == pytest.approx(list(per))


def test_masked_entries_do_not_count():
    labels = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    probs = np.array([[0.9, 0.1], [0.9, 0.9], [0.9, 0.9]])
    mask = np.ones_like(labels, dtype=bool)
    assert evaluate(probs, labels, mask, ("a", "b")).per_label_f1["a"] < 1.0
    mask[1, 0] = False  # the false positive on label a is unknown: masked out
    assert evaluate(probs, labels, mask, ("a", "b")).per_label_f1["a"] == 1.0


def test_tuned_thresholds_never_worse_on_the_split_they_were_chosen_on():
    rng = np.random.default_rng(0)
    labels = (rng.random((80, 5)) < 0.2).astype(np.float32)
    probs = labels * 0.3 + rng.random((80, 5)) * 0.4
    mask = np.ones_like(labels, dtype=bool)
    t = tune_thresholds(probs, labels, mask)
    for j in range(5):
        default = evaluate(probs, labels, mask, NAMES).per_label_f1[f"l{j}"]
        tuned = evaluate(probs, labels, mask, NAMES, thresholds=t).per_label_f1[f"l{j}"]
        assert tuned >= default - 1e-12


def test_floors_all_positive_is_the_prevalence_bound():
    labels = np.zeros((10, 2), dtype=np.float32)
    labels[:5, 0] = 1
    labels[:1, 1] = 1
    f = floors(labels, np.ones_like(labels, dtype=bool), labels, ("a", "b"))
    # label a: P=5/10 -> F1 2/3; label b: 1/10 -> 2/11; weighted by support 5:1
    assert f["all_positive_weighted_f1"] == pytest.approx((5 * 2 / 3 + 1 * 2 / 11) / 6)


def test_per_label_f1_below_ten_positives_is_not_reported():
    """A label's F1 on a few positives reveals their count: stored and printed rows leave it out."""
    labels = np.zeros((40, 2), dtype=np.float32)
    labels[:12, 0] = 1  # 12 positives: reported
    labels[:3, 1] = 1   # 3 positives: withheld
    probs = labels * 0.9 + 0.05
    metrics = evaluate(probs, labels, np.ones_like(labels, dtype=bool), ("common", "rare"))
    assert metrics.per_label_f1 == {"common": 1.0, "rare": 1.0}  # computed (weighted F1 uses it)
    assert metrics.reported_per_label_f1() == {"common": 1.0, "rare": None}
    assert metrics.to_dict()["per_label_f1"]["rare"] is None
