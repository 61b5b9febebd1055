"""Multi-label evaluation: F1 (weighted, macro, micro, per label) and macro AUROC.

Labels masked out (unknown) are left out of every count. F1 is computed from
per-label confusion counts so that masks work; with no mask the figures equal
scikit-learn's `f1_score(average=...)` (tested). Macro F1 averages the labels that have
at least one positive in the split evaluated (a label absent from a small validation
split has no defined F1); weighted F1 weights labels by their positives, as
scikit-learn does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)
# A label's F1 on a handful of positives all but tells how many there are (with 14 validation
# reports the stored F1 revealed a label's positive count): below this it is never shown.
MIN_POSITIVES_REPORTED = 10


@dataclass(frozen=True)
class Metrics:
    weighted_f1: float
    macro_f1: float
    micro_f1: float
    per_label_f1: dict[str, float]
    auroc_macro: float | None
    positives: dict[str, int] | None = None  # per label, in the split evaluated

    def reported_per_label_f1(self) -> dict[str, float | None]:
        """Per-label F1 as stored and printed: None for labels with fewer than
        MIN_POSITIVES_REPORTED positives (their F1 would reveal the count)."""
        counts = self.positives or {}
        return {name: (f1 if counts.get(name, 0) >= MIN_POSITIVES_REPORTED else None)
                for name, f1 in self.per_label_f1.items()}

    def to_dict(self, prefix: str = "") -> dict:
        """What is printed and stored: per-label F1 only for labels with enough positives."""
        return {
            f"{prefix}weighted_f1": self.weighted_f1,
            f"{prefix}macro_f1": self.macro_f1,
            f"{prefix}micro_f1": self.micro_f1,
            f"{prefix}per_label_f1": self.reported_per_label_f1(),
            f"{prefix}auroc_macro": self.auroc_macro,
        }


def _counts(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    y = (labels > 0.5) & mask
    p = pred & mask
    tp = (p & y).sum(0)
    fp = (p & ~y & mask).sum(0)
    fn = (~p & y).sum(0)
    return tp, fp, fn


def _f1(tp, fp, fn) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def evaluate(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, label_names: tuple[str, ...],
             *, thresholds: np.ndarray | float = 0.5) -> Metrics:
    """Metrics of predictions `probs >= thresholds` (one threshold or one per label)."""
    pred = probs >= np.asarray(thresholds, dtype=probs.dtype)
    tp, fp, fn = _counts(pred, labels, mask)
    f1 = _f1(tp, fp, fn)
    support = tp + fn
    present = support > 0
    weighted = float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
    macro = float(f1[present].mean()) if present.any() else 0.0
    micro = float(_f1(tp.sum(), fp.sum(), fn.sum()))
    return Metrics(
        weighted_f1=weighted,
        macro_f1=macro,
        micro_f1=micro,
        per_label_f1={name: float(v) for name, v in zip(label_names, f1, strict=True)},
        auroc_macro=auroc_macro(probs, labels, mask),
        positives={name: int(n) for name, n in zip(label_names, support, strict=True)},
    )


def auroc_macro(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean ROC AUC over labels that have both classes among their known rows."""
    from sklearn.metrics import roc_auc_score

    scores = []
    for j in range(labels.shape[1]):
        keep = mask[:, j]
        y = labels[keep, j] > 0.5
        if 0 < y.sum() < y.size:
            scores.append(roc_auc_score(y, probs[keep, j]))
    return float(np.mean(scores)) if scores else None


def tune_thresholds(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on this (validation) split.

    Labels without positives keep 0.5. The thresholds are then applied unchanged to the
    test split, so test figures carry no selection bias.
    """
    out = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        keep = mask[:, j]
        y = labels[keep, j] > 0.5
        if not y.any():
            continue
        p = probs[keep, j][:, None] >= THRESHOLD_GRID[None, :]
        tp = (p & y[:, None]).sum(0)
        fp = (p & ~y[:, None]).sum(0)
        fn = y.sum() - tp
        f1 = _f1(tp, fp, fn)
        # ties: the threshold nearest 0.5, so an uninformative label keeps the default
        best = np.flatnonzero(f1 == f1.max())
        out[j] = THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]]
    return out


def floors(labels: np.ndarray, mask: np.ndarray, train_labels: np.ndarray, label_names: tuple[str, ...],
           *, seed: int = 0) -> dict[str, float]:
    """Trivial baselines every figure should be compared with.

    all_positive: predict every label for every report. label_frequency: predict each
    label at random with its training prevalence (expected F1 estimated over 20 draws).
    """
    n, n_labels = labels.shape
    ones = np.ones((n, n_labels))
    all_pos = evaluate(ones, labels, mask, label_names)
    rng = np.random.default_rng(seed)
    prevalence = train_labels.mean(0)
    draws = [evaluate((rng.random((n, n_labels)) < prevalence).astype(float), labels, mask, label_names)
             for _ in range(20)]
    return {
        "all_positive_weighted_f1": all_pos.weighted_f1,
        "all_positive_macro_f1": all_pos.macro_f1,
        "label_frequency_weighted_f1": float(np.mean([d.weighted_f1 for d in draws])),
        "label_frequency_macro_f1": float(np.mean([d.macro_f1 for d in draws])),
    }
