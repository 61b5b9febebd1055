"""The built-in formats and `load_corpus`, the one entry point the trainer calls."""

from __future__ import annotations

import os
from pathlib import Path

from dpsweep.data import ct_rate, labelled_csv, mimic_cxr
from dpsweep.data.registry import FormatRegistry
from dpsweep.data.types import Corpus, DataOptions
from dpsweep.errors import ConfigError, DataError

FORMATS = FormatRegistry()
FORMATS.register(mimic_cxr.FORMAT, mimic_cxr.read_mimic_cxr, layout=mimic_cxr.LAYOUT)
FORMATS.register(ct_rate.FORMAT, ct_rate.read_ct_rate, layout=ct_rate.LAYOUT)
FORMATS.register(labelled_csv.FORMAT, labelled_csv.read_labelled_csv, layout=labelled_csv.LAYOUT)

_DEFAULT_OPTIONS = DataOptions()


def load_corpus(
    format: str, path: str | os.PathLike, options: DataOptions = _DEFAULT_OPTIONS
) -> Corpus:
    """Read the data set at `path` in the registered `format` into train/val(/test) splits.

    Raises DataError (one line, never report text) for an unknown format, a missing
    path or malformed files, and ConfigError for options of the wrong type.
    """
    entry = FORMATS.entry(format)
    if not isinstance(options, DataOptions):
        raise ConfigError(
            f"load_corpus options must be a DataOptions, got {type(options).__name__}; "
            "build one with DataOptions(...)"
        )
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{format}: data path {root} does not exist; pass {entry.layout}")
    return entry.reader(root, options)
