"""The Parquet results store: one file per trial, hive-partitioned by dataset.

Layout: ``STORE/dataset=<name>/<sweep_id>__<trial_id>.parquet``. Why one file per trial:
concurrent trials (Ray workers, several machines) never write the same file, a crash
loses at most the trial being written, and no lock or database is needed. The same
directory reads as one table with ``pyarrow.dataset.dataset(STORE, partitioning="hive")``,
``pandas.read_parquet(STORE)`` and DuckDB ``read_parquet('STORE/**/*.parquet',
hive_partitioning=1)``.

Atomicity: on a local disk a file is written as ``.<name>.<uuid>.tmp`` in the same
directory, fsynced, then linked to its final name (no-clobber) or renamed. The temp
name starts with '.' (ignored by pyarrow and pandas) and does not end in ``.parquet``
(so DuckDB's glob skips it). On object stores (s3://, gs://), where rename is a copy,
the final key is written directly: an object PUT is atomic.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dpsweep.errors import UserInputError
from dpsweep.results.schema import (
    FILE_SCHEMA,
    METADATA_KEY,
    METRIC_COLUMNS,
    PARTITION_COLUMN,
    REQUIRED_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
)
from dpsweep.results.validate import check_dataset_name, coerce_row

DEFAULT_STORE = "results/store"
MIN_FREE_BYTES = 1 << 20  # a row file is a few KB; less than 1 MiB free means the next write may fail
_OBJECT_STORES = {"s3", "gcs", "abfs"}  # PUT is atomic; rename would be a non-atomic copy
_PREFIX = f"{PARTITION_COLUMN}="
logger = logging.getLogger(__name__)


class StoreWarning(UserWarning):
    """A file in the store was skipped while reading (named in the message)."""


class ResultStore:
    """A directory (local or object store) of per-trial Parquet files, read as one table."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_STORE, *,
                 filesystem: pafs.FileSystem | None = None) -> None:
        """Open (lazily; nothing is created until the first write) the store at ``root``.

        ``root`` is a local path or a URI such as ``s3://bucket/store``; pass
        ``filesystem`` to use a pre-configured pyarrow filesystem with a plain path.
        """
        root = os.fspath(root)
        if filesystem is not None:
            self.fs, self.root = filesystem, root.rstrip("/")
        elif "://" in root:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(root)
            except (pa.ArrowException, ValueError) as exc:
                raise UserInputError(f"cannot open results store URI {root!r}: {exc}; "
                                     "use a local path, s3://bucket/path or gs://bucket/path") from None
            self.root = self.root.rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        self.uri = root

    def __repr__(self) -> str:
        return f"ResultStore({self.uri!r})"

    # ---------------------------------------------------------------- checking
    def check_writable(self, *, dataset: str | None = None, create: bool = True) -> None:
        """Refuse, before any work is done, a store no row could be written to.

        The path must not be a file; with ``create`` the folder is created and a small probe
        file is written and removed there (and in ``dataset``'s partition if it exists).
        Without ``create`` (a dry run) nothing is written: a local store, or its nearest
        existing parent, must be a folder this process may write to. Raises
        :class:`UserInputError` with one line naming the store and the fix.
        """
        where = f"results store {self.uri!r}"
        try:
            kind = self.fs.get_file_info(self.root).type
        except (OSError, pa.ArrowException) as exc:
            raise UserInputError(f"{where} cannot be reached ({_short(exc)}); check the URI and "
                                 "its credentials, or pass --store a local folder") from None
        if kind == pafs.FileType.File:
            raise UserInputError(f"{where} is a file, but a store is a folder; pass --store a folder "
                                 "(new, or holding a store)")
        if not create:
            if isinstance(self.fs, pafs.LocalFileSystem):
                _check_local_parent(self.root, where)
            return
        targets = [self.root]
        if dataset is not None:
            partition = f"{self.root}/{_PREFIX}{check_dataset_name(dataset)}"
            if self.fs.get_file_info(partition).type == pafs.FileType.Directory:
                targets.append(partition)
        for folder in targets:
            _probe(self.fs, folder, where)
        if isinstance(self.fs, pafs.LocalFileSystem):
            free = shutil.disk_usage(self.root).free
            if free < MIN_FREE_BYTES:
                raise UserInputError(f"{where} has {free} bytes free, fewer than the {MIN_FREE_BYTES} a row "
                                     "may need; free disk space or pass --store a folder on another disk")

    # ---------------------------------------------------------------- writing
    def append(self, row: Mapping[str, Any], *, overwrite: bool = False) -> str:
        """Validate ``row``, write it as its own Parquet file, and return the file's path.

        Raises ValueError naming the bad field, and FileExistsError when the trial
        (sweep_id, trial_id) is already stored, unless ``overwrite``.
        """
        clean = coerce_row(row)
        dataset = clean.pop(PARTITION_COLUMN)
        table = pa.Table.from_pylist([clean], schema=FILE_SCHEMA)
        return self._write(table, dataset, f"{clean['sweep_id']}__{clean['trial_id']}", overwrite)

    def append_table(self, table: pa.Table) -> list[str]:
        """Write many rows at once, one file per dataset; return the paths written.

        For bulk import and benchmarks: checks column types, required columns and status
        vectorised, but not the per-row range and cross-field rules of :meth:`append`.
        Files are named ``<first sweep_id>__batch-<uuid>.parquet``, same layout and schema.
        """
        bad = [n for n in table.column_names if n not in SCHEMA.names]
        if bad:
            raise UserInputError(f"column {bad[0]!r} is not in the results schema; see SCHEMA.md")
        table = _conform(table, SCHEMA)
        if not pc.all(pc.is_in(table["status"], pa.array(STATUSES))).as_py():
            raise UserInputError(f"column 'status' must hold only {list(STATUSES)}")
        paths = []
        for name in pc.unique(table[PARTITION_COLUMN]).to_pylist():
            part = table.filter(pc.equal(table[PARTITION_COLUMN], name))
            coerce_row({**part.slice(0, 1).to_pylist()[0]})  # check names/ids/first row fully
            part = part.drop_columns([PARTITION_COLUMN])
            stem = f"{part['sweep_id'][0].as_py()}__batch-{uuid.uuid4().hex[:12]}"
            paths.append(self._write(part, name, stem, overwrite=False))
        return paths

    def _write(self, table: pa.Table, dataset: str, stem: str, overwrite: bool) -> str:
        table = table.replace_schema_metadata(FILE_SCHEMA.metadata)
        directory = f"{self.root}/{_PREFIX}{dataset}"
        final = f"{directory}/{stem}.parquet"
        self.fs.create_dir(directory, recursive=True)
        if isinstance(self.fs, pafs.LocalFileSystem):
            _write_local(table, directory, final, overwrite)
        elif not overwrite and self.fs.get_file_info(final).type != pafs.FileType.NotFound:
            raise _exists(final)
        elif self.fs.type_name in _OBJECT_STORES:
            pq.write_table(table, final, filesystem=self.fs, compression="zstd")
        else:
            tmp = f"{directory}/.{stem}.{uuid.uuid4().hex}.tmp"
            pq.write_table(table, tmp, filesystem=self.fs, compression="zstd")
            self.fs.move(tmp, final)
        return final

    # ---------------------------------------------------------------- reading
    def datasets(self) -> list[str]:
        """Names of the datasets with at least one ``.parquet`` file, sorted (no file is opened)."""
        names = []
        for info in self._list(self.root, recursive=False):
            name = info.base_name
            if info.type == pafs.FileType.Directory and name.startswith(_PREFIX):
                files = self._list(info.path, recursive=False)
                if any(f.base_name.endswith(".parquet") and not f.base_name.startswith((".", "_"))
                       for f in files):
                    names.append(name[len(_PREFIX):])
        return sorted(names)

    def _list(self, base: str, *, recursive: bool) -> list[pafs.FileInfo]:
        try:
            return self.fs.get_file_info(pafs.FileSelector(base, recursive=recursive, allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            warnings.warn(f"cannot list results store {base}: {exc}", StoreWarning, stacklevel=3)
            return []

    def __len__(self) -> int:
        """Number of readable rows (reads one column of every file)."""
        return self.read(columns=["trial_id"]).num_rows

    def read(self, dataset: str | None = None, *, columns: Sequence[str] | None = None) -> pa.Table:
        """Read every valid trial file (of one ``dataset``, or all) as one table.

        Temp files, unreadable files and files with a foreign schema are skipped, each
        with a :class:`StoreWarning` naming the file; good rows are always kept. The
        result has :data:`SCHEMA` (or just ``columns``), ``dataset`` included.
        """
        schema = SCHEMA if columns is None else _subschema(columns)
        file_schema = pa.schema([f for f in schema if f.name != PARTITION_COLUMN])
        files = list(self._files(dataset))
        # Threads hide per-file latency (an object-store GET, a footer parse); pyarrow
        # releases the GIL. Warnings are raised here, in the calling thread.
        workers = min(len(files), 4 if isinstance(self.fs, pafs.LocalFileSystem) else 16) or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(lambda f: _read_file(self.fs, f[1], file_schema), files))
        tables = []
        for (name, _), (part, notes) in zip(files, parts, strict=True):
            for note in notes:
                warnings.warn(note, StoreWarning, stacklevel=2)
            if part is not None and PARTITION_COLUMN in schema.names:
                index = schema.get_field_index(PARTITION_COLUMN)
                column = pa.array([name] * part.num_rows, pa.string())
                part = part.add_column(index, schema.field(index), column)
            if part is not None:
                tables.append(part)
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def _files(self, dataset: str | None = None) -> Iterator[tuple[str, str]]:
        base = self.root if dataset is None else f"{self.root}/{_PREFIX}{check_dataset_name(dataset)}"
        for info in sorted(self._list(base, recursive=True), key=lambda i: i.path):
            if info.type != pafs.FileType.File:
                continue
            parent, _, base_name = info.path.rpartition("/")
            partition = parent.rpartition("/")[2]
            if base_name.startswith((".", "_")):
                if base_name.endswith(".tmp"):
                    logger.warning("ignoring %s: temp file of an unfinished or interrupted write; "
                                   "`dpsweep store repair` publishes it if complete", info.path)
                continue
            if not base_name.endswith(".parquet"):
                warnings.warn(f"ignoring {info.path}: not a .parquet file (pandas and "
                              "pyarrow.dataset would fail on it; move it out of the store)",
                              StoreWarning, stacklevel=3)
                continue
            if not partition.startswith(_PREFIX) or parent.rpartition("/")[0] != self.root:
                warnings.warn(f"skipping {info.path}: not in a '{_PREFIX}<name>' directory "
                              "directly under the store", StoreWarning, stacklevel=3)
                continue
            yield partition[len(_PREFIX):], info.path


def _read_file(fs: pafs.FileSystem, path: str, schema: pa.Schema) -> tuple[pa.Table | None, list[str]]:
    """Read one trial file conformed to ``schema``, or None; plus warnings naming the file."""
    try:
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = set(parquet.schema_arrow.names)
            missing = [n for n in REQUIRED_COLUMNS if n != PARTITION_COLUMN and n not in present]
            if missing:
                return None, [f"skipping {path}: foreign schema, missing required columns {missing}"]
            table = parquet.read(columns=[n for n in schema.names if n in present], use_threads=False)
            version = (parquet.schema_arrow.metadata or {}).get(METADATA_KEY, b"")
    except (OSError, pa.ArrowException) as exc:
        return None, [f"skipping {path}: unreadable ({type(exc).__name__}: {exc})"]
    notes = []
    if version.isdigit() and int(version) > SCHEMA_VERSION:
        notes.append(f"{path} has schema version {int(version)} > {SCHEMA_VERSION}: reading "
                     "the columns this version knows; upgrade dpsweep")
    try:
        table = _conform(table, schema)
    except (pa.ArrowException, UserInputError) as exc:
        return None, [*notes, f"skipping {path}: foreign schema ({exc})"]
    broken = _broken_rows(table)
    if broken is not None and broken.any():
        count = int(broken.sum())
        notes.append(f"skipping {count} row(s) of {path}: they break the schema's invariants "
                     "(epsilon above its target, a metric outside [0, 1], a non-finite sigma or negative steps)")
        table = table.filter(pa.array(~broken))
    return table, notes


def _broken_rows(table: pa.Table) -> np.ndarray | None:
    """True where a row breaks an invariant every dpsweep row keeps (checked on read: files
    may come from anywhere). None when none of the checked columns were read. numpy, not
    pyarrow compute with Python scalars, which would import pandas into every query."""
    names = set(table.column_names)

    def col(name: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in table[name].to_pylist()], dtype=float)

    checks = []
    with np.errstate(invalid="ignore"):
        if {"epsilon", "epsilon_target"} <= names:
            target, eps = col("epsilon_target"), col("epsilon")
            checks += [np.isfinite(target) & (eps > target * (1 + 1e-9)), eps < 0]
        if {"epsilon_release", "epsilon_target", "epsilon_scope"} <= names:
            scope = np.asarray(table["epsilon_scope"].to_pylist(), dtype=object) == "release"
            checks.append(scope & (col("epsilon_release") > col("epsilon_target") * (1 + 1e-9)))
        for name in METRIC_COLUMNS:
            if name in names:
                values = col(name)
                checks.append((values < 0) | (values > 1))
        if "sigma" in names:
            sigma = col("sigma")
            checks.append(np.isinf(sigma) | (sigma < 0))
        if "steps" in names:
            checks.append(col("steps") < 0)
    return np.logical_or.reduce(checks) if checks else None


def _subschema(columns: Sequence[str]) -> pa.Schema:
    unknown = [c for c in columns if c not in SCHEMA.names]
    if unknown:
        raise UserInputError(f"column {unknown[0]!r} is not in the results schema; see SCHEMA.md")
    return pa.schema([SCHEMA.field(c) for c in columns], metadata=SCHEMA.metadata)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``table`` to ``schema``: missing nullable columns become null, extras are dropped."""
    if table.schema.equals(schema, check_metadata=False):  # fast path: our own files
        for field in schema:
            if not field.nullable and table[field.name].null_count:
                raise UserInputError(f"required column {field.name!r} holds nulls")
        return table.replace_schema_metadata(schema.metadata)
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            column = table[field.name].cast(field.type)
            if not field.nullable and column.null_count:
                raise UserInputError(f"required column {field.name!r} holds {column.null_count} nulls")
            arrays.append(column)
        elif field.nullable:
            arrays.append(pa.nulls(table.num_rows, field.type))
        else:
            raise UserInputError(f"required column {field.name!r} is missing")
    return pa.Table.from_arrays(arrays, schema=schema)


def _exists(path: str) -> FileExistsError:
    return FileExistsError(errno.EEXIST, "trial already stored; pass overwrite=True to replace it "
                           "or give the trial a new trial_id", path)


def _write_local(table: pa.Table, directory: str, final: str, overwrite: bool) -> None:
    """Write to a temp file, fsync it, then publish it atomically under ``final``."""
    tmp = f"{directory}/.{os.path.basename(final)}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, final)
        else:
            _link_no_clobber(tmp, final)
        _fsync_dir(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _link_no_clobber(tmp: str, final: str) -> None:
    try:
        os.link(tmp, final)  # atomic, and fails if ``final`` exists: no silent overwrite
    except FileExistsError:
        raise _exists(final) from None
    except OSError:  # file system without hard links: check, then rename (small race)
        if os.path.exists(final):
            raise _exists(final) from None
        os.replace(tmp, final)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _probe(fs: pafs.FileSystem, folder: str, where: str) -> None:
    """Create ``folder``, write a small file there and remove it; UserInputError when that fails."""
    probe = f"{folder}/.dpsweep-probe-{uuid.uuid4().hex}"  # a dot name: readers and repair ignore it
    try:
        fs.create_dir(folder, recursive=True)
        with fs.open_output_stream(probe) as out:
            out.write(b"dpsweep write probe\n")
        fs.delete_file(probe)
    except (OSError, pa.ArrowException) as exc:
        raise UserInputError(f"{where} is not writable ({_short(exc)}); pass --store a folder you can "
                             "write to, or fix its permissions") from None


def _check_local_parent(root: str, where: str) -> None:
    """Dry run: the store (or its nearest existing parent) is a folder we may write to."""
    path = root
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise UserInputError(f"{where} lies under {path}, which is a file; pass --store a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserInputError(f"{where} is not writable ({path} refuses writes); pass --store a folder "
                             "you can write to, or fix its permissions")


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
