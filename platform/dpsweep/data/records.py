"""From parsed label cells to a :class:`Split`: label values, uncertain policy, masks.

Readers collect raw labels as float rows with one convention for every format:
1.0 positive, 0.0 negative, -1.0 uncertain (MIMIC-CXR only), NaN unknown (masked).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpsweep.data.csvio import Table, show_value
from dpsweep.data.types import Split, UncertainPolicy
from dpsweep.errors import DataError

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
UNKNOWN = float("nan")


def parse_label(
    table: Table,
    row: int,
    column: str,
    value: str,
    *,
    allowed: Sequence[float],
    blank: float | None,
    rule: str,
) -> float:
    """One label cell as a float in `allowed`; `blank` for an empty cell (None: an error).

    row is the 0-based data row; the error names it 1-based, as a user counts rows
    below the header. The cell is shown only if it cannot be report text.
    """
    text = value.strip()
    if not text and blank is not None:
        return blank
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or number not in allowed:
        raise DataError(
            f"{table.where} data row {row + 1} column {column!r} holds {show_value(value)}; {rule}"
        )
    return number


def build_split(
    texts: list[str], raw: np.ndarray, groups: list[str], *, policy: UncertainPolicy
) -> Split:
    """A split whose labels follow `policy` for -1.0 and whose mask hides NaN cells."""
    raw = np.asarray(raw, dtype=np.float32).reshape(len(texts), -1)
    unknown = np.isnan(raw)
    uncertain = raw == UNCERTAIN
    labels = np.where(unknown, 0.0, raw)
    if policy == "ones":
        labels = np.where(uncertain, 1.0, labels)
    else:
        labels = np.where(uncertain, 0.0, labels)
    mask = ~unknown
    if policy == "ignore":
        mask &= ~uncertain
    return Split(
        texts=list(texts), labels=labels.astype(np.float32), mask=mask, groups=list(groups)
    )


def empty_split(n_labels: int) -> Split:
    """A split with no rows (used only transiently while assembling corpora)."""
    return Split(
        texts=[],
        labels=np.zeros((0, n_labels), np.float32),
        mask=np.zeros((0, n_labels), bool),
        groups=[],
    )
