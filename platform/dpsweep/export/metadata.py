"""A saved model's metadata file (dpsweep_model.json): names, checks, and copying a model.

Torch-free, so `dpsweep best --export-model` and other light commands can use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dpsweep import __version__
from dpsweep.errors import ModelError
from dpsweep.export.files import check_folder_target, staged_folder

FORMAT = "dpsweep-model"
FORMAT_VERSION = 1
METADATA_FILE = "dpsweep_model.json"
_SAVED_BY = "a folder written by dpsweep's save_model (dpsweep train --output-dir)"




def read_metadata(folder: str | Path) -> dict[str, Any]:
    """The checked contents of dpsweep_model.json (ModelError, one line, when unusable)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist; pass {_SAVED_BY}")
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelError(f"{folder} is not a dpsweep model folder (no {METADATA_FILE}); pass {_SAVED_BY}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({type(exc).__name__}); re-save the model") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path} does not describe a dpsweep model (format is not {FORMAT!r}); pass {_SAVED_BY}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{folder} has model format version {meta.get('format_version')!r}, but dpsweep "
                         f"{__version__} reads version {FORMAT_VERSION}; use the dpsweep version that saved it")
    for key in ("label_names", "thresholds", "pooling", "max_length", "base_model"):
        if key not in meta:
            raise ModelError(f"{path} lacks the key {key!r}; re-save the model with save_model")
    return meta



def copy_model(source: str, target: str | Path, *, force: bool = False) -> Path:
    """Copy a saved model (folder or URI) to a local folder, checked to be a dpsweep model."""
    import pyarrow.fs as pafs

    target = Path(target).expanduser()
    check_folder_target(target, force=force, is_replaceable=lambda p: (p / METADATA_FILE).is_file())
    with staged_folder(target, force=force) as staging:
        if "://" in source:
            pafs.copy_files(source, str(staging))
        else:
            if not Path(source, METADATA_FILE).is_file():
                raise ModelError(f"{source} holds no saved dpsweep model ({METADATA_FILE} missing); "
                                 "it may have been moved or deleted since the sweep")
            pafs.copy_files(str(Path(source).resolve()), str(staging))
    read_metadata(target)  # a foreign or broken folder fails here, one line
    return target
