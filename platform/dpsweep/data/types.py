"""The typed objects every reader returns: options in, a corpus of splits out.

A :class:`Corpus` holds report texts and multi-label targets ready for training. It
carries no file paths or raw rows, only what the trainer needs, so it can be passed
to a Ray worker as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from dpsweep.errors import ConfigError

Sections = Literal["findings", "impression", "both"]
UncertainPolicy = Literal["zeros", "ones", "ignore"]

SECTIONS: tuple[str, ...] = get_args(Sections)
UNCERTAIN_POLICIES: tuple[str, ...] = get_args(UncertainPolicy)


@dataclass(frozen=True)
class DataOptions:
    """How a data set on disk becomes a corpus.

    sections: which report sections become the text (falls back to the other section,
        then to the whole report, when a report lacks the chosen one).
    uncertain_policy: what MIMIC-CXR's -1.0 (uncertain) labels become: 0, 1, or
        masked out of loss and metrics ("ignore").
    val_fraction: share of training rows carved out as validation, used only when the
        format has no validation split of its own. Carved by patient where known.
    seed: seed of that carving.
    text_column: csv format only: the column holding the report text (None: detected).
    label_columns: csv format only: the 0/1 label columns, in label order (None: every
        column that is not the text or an id). Columns not named are ignored.
    """

    sections: Sections = "both"
    uncertain_policy: UncertainPolicy = "zeros"
    val_fraction: float = 0.2
    seed: int = 0
    text_column: str | None = None
    label_columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.sections not in SECTIONS:
            raise ConfigError(
                f"data option sections must be one of {', '.join(SECTIONS)}, "
                f"but got {self.sections!r}; pick one of those"
            )
        if self.uncertain_policy not in UNCERTAIN_POLICIES:
            raise ConfigError(
                f"data option uncertain_policy must be one of {', '.join(UNCERTAIN_POLICIES)}, "
                f"but got {self.uncertain_policy!r}; pick one of those"
            )
        fraction = self.val_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not math.isfinite(fraction)
            or not 0.0 < fraction < 0.9
        ):
            raise ConfigError(
                f"data option val_fraction must satisfy 0 < val_fraction < 0.9, "
                f"but got {fraction!r}; use e.g. 0.2"
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, (int, np.integer))
            or self.seed < 0
        ):
            raise ConfigError(
                f"data option seed must be an integer >= 0, but got {self.seed!r}; use e.g. 0"
            )
        self._check_columns()

    def _check_columns(self) -> None:
        """text_column a non-empty name; label_columns non-empty, unique, not the text."""
        text = self.text_column
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise ConfigError(
                f"data option text_column must be a column name, but got {text!r}; "
                "pass a name, or None to detect the text column"
            )
        if self.label_columns is None:
            return
        labels = self.label_columns
        if isinstance(labels, list):
            labels = tuple(labels)
            object.__setattr__(self, "label_columns", labels)  # frozen: normalise once
        if (
            not isinstance(labels, tuple)
            or not labels
            or not all(isinstance(n, str) and n.strip() for n in labels)
        ):
            raise ConfigError(
                f"data option label_columns must be a non-empty tuple of column names, but got "
                f"{labels!r}; pass e.g. ('Edema', 'Pneumonia'), or None to detect them"
            )
        twice = sorted({n for n in labels if labels.count(n) > 1})
        if twice:
            raise ConfigError(
                f"data option label_columns names {', '.join(map(repr, twice))} more than "
                "once; name each label column once"
            )
        if text in labels:
            raise ConfigError(
                f"data option text_column {text!r} is also one of label_columns; "
                "name the text column in text_column only"
            )


@dataclass
class Split:
    """One split of a corpus: texts with multi-label 0/1 targets.

    labels: float32 [n, n_labels] of 0/1. mask: bool [n, n_labels], False where the
    label is unknown (excluded from loss and metrics). groups: the patient id of each
    row (or the study/volume id when the data set knows no patient), used to keep a
    patient's reports in one split. Never text.
    """

    texts: list[str]
    labels: np.ndarray
    mask: np.ndarray
    groups: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        n = len(self.texts)
        if self.labels.ndim != 2 or self.labels.shape[0] != n:
            raise ValueError(
                f"Split labels must have shape [{n}, n_labels], got {self.labels.shape}"
            )
        if self.mask.shape != self.labels.shape:
            raise ValueError(
                f"Split mask shape {self.mask.shape} differs from labels {self.labels.shape}"
            )
        if len(self.groups) != n:
            raise ValueError(f"Split has {n} texts but {len(self.groups)} groups")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_labels(self) -> int:
        return int(self.labels.shape[1])

    def take(self, indices: np.ndarray | list[int]) -> Split:
        """The rows at `indices` (an integer index array or boolean mask), as a new split."""
        idx = np.asarray(indices)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        return Split(
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            mask=self.mask[idx],
            groups=[self.groups[i] for i in idx],
        )


@dataclass
class Corpus:
    """A labelled report corpus split into train / val (/ test).

    test exists only when the data set ships a test split; it is never used to choose
    hyperparameters. skipped counts records dropped or merged while reading, by reason
    (e.g. labels without a report), so a summary can show them without showing text.
    """

    name: str
    format: str
    label_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    # True when the splits' groups are patient ids (patient-level privacy needs them)
    groups_are_patients: bool = False

    def __post_init__(self) -> None:
        self.label_names = tuple(self.label_names)
        for split_name, split in self.splits().items():
            if split.n_labels != len(self.label_names):
                raise ValueError(
                    f"Corpus {self.name!r} split {split_name} has {split.n_labels} label "
                    f"columns but {len(self.label_names)} label names"
                )

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def splits(self) -> dict[str, Split]:
        """The present splits by name: train, val and, when there is one, test."""
        out = {"train": self.train, "val": self.val}
        if self.test is not None:
            out["test"] = self.test
        return out
