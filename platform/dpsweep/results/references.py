"""Reference figures every front is read against: the non-private TF-IDF peer and two floors.

Per dataset and split, a sweep (or ``dpsweep store references --compute``) computes on the
corpus it read: TF-IDF + logistic regression (NON-private: its vocabulary, IDF and weights
are fitted on the training split) and two floors, every label positive and labels drawn at
their training frequencies. They are stored beside the trial rows as one small Parquet
file, ``STORE/_references.pq``, one row per (dataset, split, reference, metric).

Why that name: pyarrow and pandas skip files starting with '_' when they read the store as
a dataset, and DuckDB's ``STORE/**/*.parquet`` glob skips a name not ending in
``.parquet``; the trial rows read exactly as before. ``pyarrow.parquet.read_table`` reads
the file itself. Torch-free: pyarrow only.

A split is (val_fraction, seed, n_train, n_val, sections, uncertain_policy): the trial
columns that decide which reports are in training and validation and what their text and
labels are. A front is shown with the references of the splits its rows were trained on.
Writing replaces the rows of the same key and keeps every other one (read, merge, write a
temp file, rename); two writers at the same instant may lose one of the two updates, which
the next sweep on that split writes again.
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

REFERENCES_FILE = "_references.pq"
REFERENCE_KINDS: dict[str, str] = {
    "tfidf_logreg": "TF-IDF + logistic regression (non-private)",
    "all_positive": "every label positive",
    "label_frequency": "label frequencies",
}
"""Reference kind -> its label in tables, plots and notes (floors are the last two)."""
FLOORS = ("all_positive", "label_frequency")
SPLIT_COLUMNS = ("val_fraction", "seed", "n_train", "n_val", "sections", "uncertain_policy")
KEY_COLUMNS = ("dataset", *SPLIT_COLUMNS, "reference", "metric")
NON_PRIVATE_NOTE = ("the references are not private: the TF-IDF peer is fitted on the training split "
                    "and the label-frequency floor draws at the training prevalence; no ε covers them")

REFERENCE_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("dataset_format", pa.string()),
    pa.field("val_fraction", pa.float64()),
    pa.field("seed", pa.int64()),
    pa.field("n_train", pa.int64()),
    pa.field("n_val", pa.int64()),
    pa.field("sections", pa.string()),
    pa.field("uncertain_policy", pa.string()),
    pa.field("reference", pa.string(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("computed_at", pa.timestamp("us", tz="UTC")),
    pa.field("dpsweep_version", pa.string()),
])


def reference_rows(metrics: Mapping[str, Mapping[str, float | None]], *, dataset: str, dataset_format: str,
                   split: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sidecar rows of one dataset and split from ``{kind: {metric: value}}``."""
    from dpsweep import __version__

    unknown = sorted(set(metrics) - set(REFERENCE_KINDS))
    if unknown:
        raise ValueError(f"reference kind must be one of {list(REFERENCE_KINDS)}, but got {unknown[0]!r}")
    now = datetime.now(timezone.utc)
    return [{"dataset": dataset, "dataset_format": dataset_format,
             **{c: split.get(c) for c in SPLIT_COLUMNS}, "reference": kind, "label": REFERENCE_KINDS[kind],
             "metric": metric, "value": value, "computed_at": now, "dpsweep_version": __version__}
            for kind, values in metrics.items() for metric, value in values.items()]


def _location(store: Any) -> tuple[pafs.FileSystem, str]:
    return store.fs, f"{store.root}/{REFERENCES_FILE}"


def read_references(store: Any, dataset: str | None = None) -> pa.Table:
    """The stored references (of one ``dataset``, or all); an empty table when none."""
    fs, path = _location(store)
    try:
        if fs.get_file_info(path).type != pafs.FileType.File:
            return REFERENCE_SCHEMA.empty_table()
        with fs.open_input_file(path) as handle:
            table = pq.read_table(handle)
    except (OSError, pa.ArrowException):
        return REFERENCE_SCHEMA.empty_table()  # unreadable: shown as missing, rewritten by the next sweep
    table = table.select([n for n in REFERENCE_SCHEMA.names if n in table.column_names])
    table = pa.table({f.name: (table[f.name].cast(f.type) if f.name in table.column_names
                               else pa.nulls(table.num_rows, f.type)) for f in REFERENCE_SCHEMA})
    return table if dataset is None else table.filter(pc.equal(table["dataset"], dataset))


def _key(row: Mapping[str, Any]) -> tuple:
    return tuple(row.get(c) for c in KEY_COLUMNS)


def write_references(store: Any, rows: Sequence[Mapping[str, Any]]) -> str:
    """Store ``rows``, replacing stored rows of the same key and keeping all others; the path."""
    fs, path = _location(store)
    new = pa.Table.from_pylist([dict(r) for r in rows], schema=REFERENCE_SCHEMA)
    replaced = {_key(r) for r in new.to_pylist()}
    kept = [r for r in read_references(store).to_pylist() if _key(r) not in replaced]
    table = pa.concat_tables([pa.Table.from_pylist(kept, schema=REFERENCE_SCHEMA), new])
    fs.create_dir(store.root, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        _write_local(table, path)
    else:  # object stores: one PUT is atomic
        pq.write_table(table, path, filesystem=fs)
    return path


def _write_local(table: pa.Table, path: str) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def has_references(store: Any, *, dataset: str, split: Mapping[str, Any]) -> bool:
    """Whether every reference kind is stored for this dataset and split."""
    rows = [r for r in read_references(store, dataset).to_pylist() if _same_split(r, split)]
    return {r["reference"] for r in rows} >= set(REFERENCE_KINDS)


def _same_split(reference: Mapping[str, Any], split: Mapping[str, Any]) -> bool:
    """A trial's split matches a stored one; a column the trial row lacks (older rows) matches any."""
    for column in SPLIT_COLUMNS:
        mine, theirs = split.get(column), reference.get(column)
        if mine is None or theirs is None:
            continue
        if isinstance(mine, float) or isinstance(theirs, float):
            if not math.isclose(float(mine), float(theirs), rel_tol=1e-9):
                return False
        elif mine != theirs:
            return False
    return True


def row_splits(rows: pa.Table) -> list[dict[str, Any]]:
    """The distinct splits of trial rows (columns absent from the table are None)."""
    present = [c for c in SPLIT_COLUMNS if c in rows.column_names]
    seen = {tuple(r.get(c) for c in SPLIT_COLUMNS) for r in rows.select(present).to_pylist()}
    return [dict(zip(SPLIT_COLUMNS, values, strict=True)) for values in sorted(seen, key=repr)]


def references_for(references: pa.Table, rows: pa.Table, *, dataset: str,
                   metric: str) -> list[dict[str, Any]]:
    """Per split of ``rows`` with references stored: {split, values: {kind: value}}.

    ``values`` holds every kind stored for ``metric`` (None when a kind lacks it).
    """
    stored = [r for r in references.to_pylist() if r["dataset"] == dataset and r["metric"] == metric]
    out = []
    for split in row_splits(rows):
        mine = [r for r in stored if _same_split(r, split)]
        if not mine:
            continue
        chosen = _one_split(mine)
        values = {kind: next((r["value"] for r in chosen if r["reference"] == kind), None)
                  for kind in REFERENCE_KINDS}
        out.append({"split": {c: chosen[0][c] for c in SPLIT_COLUMNS}, "values": values})
    return _unique(out)


def _one_split(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one stored split: a trial row without split columns may match several; the newest wins."""
    newest = max(rows, key=lambda r: r["computed_at"] or datetime.min.replace(tzinfo=timezone.utc))
    signature = tuple(newest[c] for c in SPLIT_COLUMNS)
    return [r for r in rows if tuple(r[c] for c in SPLIT_COLUMNS) == signature]


def _unique(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def split_text(split: Mapping[str, Any]) -> str:
    """``640 train / 160 validation, val_fraction 0.2, seed 0`` (the parts known)."""
    parts = []
    if split.get("n_train") is not None and split.get("n_val") is not None:
        parts.append(f"{split['n_train']} train / {split['n_val']} validation")
    for column in ("val_fraction", "seed", "sections", "uncertain_policy"):
        if split.get(column) is not None:
            parts.append(f"{column} {split[column]:g}" if isinstance(split[column], float)
                         else f"{column} {split[column]}")
    return ", ".join(parts)


def _value(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def reference_text(values: Mapping[str, float | None]) -> str:
    """``TF-IDF + logistic regression (non-private) 0.777; floors: every label positive 0.400, ...``."""
    floors = ", ".join(f"{REFERENCE_KINDS[k]} {_value(values.get(k))}" for k in FLOORS)
    return f"{REFERENCE_KINDS['tfidf_logreg']} {_value(values.get('tfidf_logreg'))}; floors: {floors}"


def compute_hint(store_uri: str, dataset: str) -> str:
    """The command that computes a dataset's references without a sweep."""
    return (f"dpsweep store references --compute --store {store_uri} --dataset-name {dataset} "
            "--data-path DIR --dataset-format FORMAT (the split settings of its trials)")


def reference_lines(references: pa.Table, rows: pa.Table, *, dataset: str, metric: str,
                    store_uri: str) -> list[str]:
    """What a front is printed with: one line per split and a note, or how to compute them."""
    found = references_for(references, rows, dataset=dataset, metric=metric)
    if not found:
        return [f"no references stored for {dataset} on the split of these trials (run a sweep, or "
                f"`{compute_hint(store_uri, dataset)}` to compute them)"]
    several = len(found) > 1
    lines = [f"references ({metric}" + (f"; {split_text(f['split'])}" if several else "") + "): "
             + reference_text(f["values"]) for f in found]
    return [*lines, f"note: {NON_PRIVATE_NOTE}"]


def references_json(references: pa.Table, rows: pa.Table, *, dataset: str, metric: str) -> list[dict[str, Any]]:
    """JSON-ready references of a front: one object per split, a label per kind."""
    return [{"split": f["split"], "metric": metric, "non_private": True,
             "references": [{"reference": kind, "label": REFERENCE_KINDS[kind], "floor": kind in FLOORS,
                             "value": value} for kind, value in f["values"].items()]}
            for f in references_for(references, rows, dataset=dataset, metric=metric)]
