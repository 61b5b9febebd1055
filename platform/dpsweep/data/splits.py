"""Seeded, patient-aware splitting and the no-patient-straddles-splits check.

Carving validation rows by patient (group) keeps one patient's reports out of both
train and val, which would otherwise inflate validation scores. With one row per
group, this is a plain seeded row split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dpsweep.errors import DataError


def carve_validation(
    groups: Sequence[str], *, val_fraction: float, seed: int, source: str
) -> np.ndarray:
    """Boolean array, True for rows moved to validation: whole groups, ~val_fraction of rows.

    Unique groups are sorted, shuffled by numpy's Generator(seed) and taken in that
    order until at least round(val_fraction * n) rows are in; at least one group stays in
    train. The same groups and seed always give the same split.
    """
    n = len(groups)
    unique, inverse, counts = np.unique(
        np.asarray(groups, dtype=str), return_inverse=True, return_counts=True
    )
    if len(unique) < 2:
        raise DataError(
            f"{source}: cannot carve a validation split from {n} row(s) in {len(unique)} "
            "patient group(s); need rows from at least 2 patients, or provide a validation file"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    target = max(1, round(val_fraction * n))
    chosen = np.zeros(len(unique), dtype=bool)
    taken = 0
    for g in order[:-1]:  # the last group in the shuffled order always stays in train
        if taken >= target:
            break
        chosen[g] = True
        taken += counts[g]
    return chosen[inverse.reshape(-1)]


def check_disjoint(groups_by_split: Mapping[str, Sequence[str]], *, source: str, fix: str) -> None:
    """DataError if any patient group appears in two splits (leaks between train and eval).

    The message counts the groups and never names one: patient ids are patient data.
    """
    seen: dict[str, set[str]] = {}
    for split_name, groups in groups_by_split.items():
        here = set(groups)
        for first, earlier in seen.items():
            shared = len(here & earlier)
            if shared:
                raise DataError(
                    f"{source}: {shared} patient group(s) appear in both the {first} and the "
                    f"{split_name} split (ids not shown); {fix}"
                )
        seen[split_name] = here
