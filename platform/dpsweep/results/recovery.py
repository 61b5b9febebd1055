"""Nothing lost: rows that could not be written, and writes a killed process left unfinished.

- :func:`append_or_recover`: when a trained trial's row cannot be written (full disk, a
  permission changed mid-run), the row is saved as JSON in a recovery folder instead of
  being thrown away; :func:`import_row_files` (``dpsweep store import-rows``) publishes it
  later.
- :func:`repair_store` (``dpsweep store repair``): a writer killed between writing its
  temp file and publishing it (see :mod:`dpsweep.results.store`) leaves a complete
  ``.<name>.parquet.<uuid>.tmp``; repair publishes it under its final name, and removes
  temp files that are incomplete or whose row breaks the schema.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dpsweep.console import json_safe
from dpsweep.errors import UserInputError
from dpsweep.results.schema import PARTITION_COLUMN
from dpsweep.results.store import ResultStore, _fsync_dir, _link_no_clobber
from dpsweep.results.validate import coerce_row

RECOVERY_FOLDER = "recovered-rows"
DEFAULT_MIN_AGE_S = 60.0  # younger temp files may belong to a writer still at work
# ".<stem>[.parquet].<32 hex>.tmp", as ResultStore writes them
_TEMP = re.compile(r"\.(?P<stem>.+?)(?:\.parquet)?\.[0-9a-f]{32}\.tmp")
_PREFIX = f"{PARTITION_COLUMN}="


# ---- a row that could not be written ------------------------------------------------------

@dataclass(frozen=True)
class Recovered:
    """A row saved for later import, and why the store refused it."""

    file: Path
    error: str
    store: str

    def message(self, *, model_uri: str | None = None) -> str:
        """One line: what failed, where the row is, how to import it (and where the model is)."""
        model = f"; the trained model is kept at {model_uri}" if model_uri else ""
        return (f"the trial's row could not be written to results store {self.store} ({self.error}); "
                f"it is saved in {self.file}{model}; once the store is fixed, publish it with "
                f"`dpsweep store import-rows {self.file} --store {self.store}`")


def recovery_folder(base: str | os.PathLike[str] | None = None) -> Path:
    """``<base>/recovered-rows`` for a local ``base`` (a runs dir), else in the working directory."""
    if base is None or "://" in os.fspath(base):
        return Path.cwd() / RECOVERY_FOLDER
    return Path(base).expanduser().resolve() / RECOVERY_FOLDER


def row_to_json(row: Mapping[str, Any]) -> str:
    """A row as JSON in dpsweep's one convention (``json_safe``: inf as "inf"); times as ISO 8601."""
    return json.dumps(json_safe(dict(row)), sort_keys=True, allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def save_row(row: Mapping[str, Any], folder: Path) -> Path:
    """Write ``row`` as one JSON file (fsynced, then renamed into place) in ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = "__".join(_safe(row.get(k)) for k in ("sweep_id", "trial_id"))
    path = folder / f"{ids}.{uuid.uuid4().hex[:8]}.json"
    tmp = folder / f".{path.name}.tmp"
    text = row_to_json(row)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def _safe(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(value))[:80] or "row"


def append_or_recover(store: ResultStore, row: Mapping[str, Any], *, folder: Path) -> str | Recovered:
    """``store.append(row)``; when that fails, the row saved in ``folder`` (else the temp dir).

    FileExistsError (the trial is already stored) is raised as it is. Returns the stored
    file's path, or a :class:`Recovered` saying where the row went and why.
    """
    try:
        return store.append(row)
    except FileExistsError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever broke the write, the trained trial is kept
        error = f"{type(exc).__name__}: {exc}"[:300]
        try:
            saved = save_row(row, folder)
        except (OSError, TypeError, ValueError):
            try:
                saved = save_row(row, Path(tempfile.gettempdir()) / f"dpsweep-{RECOVERY_FOLDER}")
            except (OSError, TypeError, ValueError) as again:
                raise UserInputError(f"the trial's row could not be written to results store {store.uri} "
                                     f"({error}) nor saved in {folder} ({type(again).__name__}: {again}); "
                                     "free disk space or fix permissions and run the trial again") from exc
        return Recovered(file=saved, error=error, store=store.uri)


@dataclass(frozen=True)
class Imported:
    file: str
    status: str  # "imported" | "already stored" | "refused"
    detail: str


def import_row_files(store: ResultStore, files: Iterable[str]) -> list[Imported]:
    """Publish rows saved by :func:`save_row`; a row already stored is left as it is."""
    out = []
    for name in files:
        try:
            row = json.loads(Path(name).read_text(encoding="utf-8"))
            if not isinstance(row, dict):
                raise UserInputError("it holds no JSON object (a row)")
            out.append(Imported(name, "imported", store.append(row)))
        except FileExistsError:
            out.append(Imported(name, "already stored", "its trial is in the store; the file can go"))
        except (OSError, ValueError, pa.ArrowException) as exc:  # UserInputError is a ValueError
            out.append(Imported(name, "refused", f"{type(exc).__name__}: {exc}"[:300]))
    return out


# ---- temp files a killed writer left -------------------------------------------------------

@dataclass(frozen=True)
class RepairAction:
    path: str
    action: str  # "published" | "removed" | "kept"
    detail: str


def repair_store(store: ResultStore, *, min_age_s: float = DEFAULT_MIN_AGE_S,
                 only: Callable[[str], bool] | None = None) -> list[RepairAction]:
    """Publish complete temp files of killed writers; remove broken ones; keep young ones.

    A temp file is complete when its Parquet footer reads and every row passes the row
    checks of :meth:`ResultStore.append`; it then becomes its final name, unless that name
    exists (the writer published it and was killed before removing the temp file): then
    the temp file is removed. Temp files modified less than ``min_age_s`` ago are kept: a
    live writer may be about to publish them. ``only(stem)`` limits repair to the temp files
    of some rows (stem: ``<sweep_id>__<trial_id>``), e.g. those of one sweep.
    """
    actions = []
    for info in _temp_files(store):
        if only is not None and not only(_TEMP.fullmatch(info.path.rpartition("/")[2])["stem"]):
            continue
        age = time.time() - info.mtime.timestamp() if info.mtime is not None else float("inf")
        if age < min_age_s:
            actions.append(RepairAction(info.path, "kept", f"written {age:.0f} s ago: a writer may still be at "
                                        "work; run repair again later, or pass --min-age-s 0"))
            continue
        actions.append(_repair_one(store, info.path))
    return actions


def _temp_files(store: ResultStore) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(store.root, recursive=True, allow_not_found=True)
    try:
        infos = store.fs.get_file_info(selector)
    except (OSError, pa.ArrowException) as exc:
        raise UserInputError(f"cannot list results store {store.uri} ({exc}); pass --store an existing store") from None
    out = []
    for info in sorted(infos, key=lambda i: i.path):
        parent, _, name = info.path.rpartition("/")
        partition = parent.rpartition("/")[2]
        if (info.type == pafs.FileType.File and _TEMP.fullmatch(name) and partition.startswith(_PREFIX)
                and parent.rpartition("/")[0] == store.root):
            out.append(info)
    return out


def _repair_one(store: ResultStore, tmp: str) -> RepairAction:
    parent, _, name = tmp.rpartition("/")
    final = f"{parent}/{_TEMP.fullmatch(name)['stem']}.parquet"
    problem = _check_temp(store.fs, tmp, dataset=parent.rpartition("/")[2][len(_PREFIX):])
    if problem is not None:
        store.fs.delete_file(tmp)
        return RepairAction(tmp, "removed", f"incomplete or invalid ({problem})")
    if store.fs.get_file_info(final).type != pafs.FileType.NotFound:
        store.fs.delete_file(tmp)
        return RepairAction(tmp, "removed", f"already published as {final}")
    if isinstance(store.fs, pafs.LocalFileSystem):
        try:
            _link_no_clobber(tmp, final)
        except FileExistsError:  # published by someone else a moment ago
            os.remove(tmp)
            return RepairAction(tmp, "removed", f"already published as {final}")
        if os.path.exists(tmp):
            os.remove(tmp)
        _fsync_dir(parent)
    else:
        store.fs.move(tmp, final)
    return RepairAction(final, "published", f"from {name}, a finished write its writer did not publish")


def _check_temp(fs: pafs.FileSystem, path: str, *, dataset: str) -> str | None:
    """None when the file is a whole Parquet file of valid rows, else why not."""
    try:
        with fs.open_input_file(path) as handle:
            table = pq.ParquetFile(handle).read(use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    if table.num_rows == 0:
        return "no rows"
    try:
        for row in table.to_pylist():
            coerce_row({**row, PARTITION_COLUMN: dataset})
    except ValueError as exc:
        return str(exc)[:200]
    return None
