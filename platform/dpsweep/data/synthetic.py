"""`write_synthetic`: a synthetic corpus in a real data set's on-disk layout.

The files are laid out exactly as MIMIC-CXR or CT-RATE ship them, so the ordinary
readers load them unchanged: a quickstart, CI and tests exercise the same code path as
real data, without patient data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from dpsweep.data.synth_ct_rate import write_ct_rate
from dpsweep.data.synth_mimic import write_mimic_cxr
from dpsweep.errors import ConfigError, DataError

SyntheticFormat = Literal["mimic-cxr", "ct-rate"]
MIN_ITEMS = 10
_WRITERS: dict[str, tuple[Callable[..., Path], str]] = {
    "mimic-cxr": (write_mimic_cxr, "files"),
    "ct-rate": (write_ct_rate, "dataset"),
}


def write_synthetic(format: SyntheticFormat, out: str | os.PathLike, *, n: int, seed: int) -> Path:
    """Write a synthetic corpus of n studies (mimic-cxr) or n scans (ct-rate) under `out`.

    Deterministic for a seed. Refuses an `out` that already holds the layout's data
    folder, so stale files of an earlier run never mix in. Returns the root to pass
    to load_corpus.
    """
    if format not in _WRITERS:
        raise ConfigError(
            f"write_synthetic format must be one of {', '.join(_WRITERS)}, "
            f"but got {format!r}; pick one of those"
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_ITEMS:
        raise ConfigError(
            f"write_synthetic n must be an integer >= {MIN_ITEMS} (enough patients "
            f"for train, validation and test), but got {n!r}; use e.g. 2000"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(
            f"write_synthetic seed must be an integer >= 0, but got {seed!r}; use e.g. 0"
        )
    writer, data_folder = _WRITERS[format]
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"{format}: synthetic output path {root} is a file; pass a folder")
    target = root / data_folder
    if target.exists() and any(target.iterdir()):
        raise DataError(
            f"{format}: synthetic output folder {root} already holds {data_folder}/; "
            "remove it or pass an empty folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    return writer(root, n=n, seed=seed)
