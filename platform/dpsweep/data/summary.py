"""Label counts of a corpus, safe to log or store: numbers and names, never text."""

from __future__ import annotations

from typing import Any

import numpy as np

from dpsweep.data.types import Corpus, Split


def summarize(corpus: Corpus) -> dict[str, Any]:
    """Counts per split and label (positives, negatives, masked, n) plus skipped records.

    Plain ints, strings and dicts, so the result can go to JSON, YAML or a results row.
    """
    return {
        "name": corpus.name,
        "format": corpus.format,
        "label_names": list(corpus.label_names),
        "splits": {
            name: _split_counts(split, corpus.label_names)
            for name, split in corpus.splits().items()
        },
        "skipped": dict(sorted(corpus.skipped.items())),
    }


def _split_counts(split: Split, label_names: tuple[str, ...]) -> dict[str, Any]:
    known = split.mask
    positive = (split.labels == 1) & known
    return {
        "n": len(split),
        "groups": len(set(split.groups)),
        "labels": {
            name: {
                "positives": int(positive[:, j].sum()),
                "negatives": int((known[:, j] & ~positive[:, j]).sum()),
                "masked": int((~known[:, j]).sum()),
                "n": len(split),
            }
            for j, name in enumerate(label_names)
        },
    }


def prevalence(split: Split) -> np.ndarray:
    """Share of known labels that are positive, per label (NaN where none is known)."""
    known = split.mask.sum(axis=0)
    positives = ((split.labels == 1) & split.mask).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known > 0, positives / np.maximum(known, 1), np.nan)
