"""The store round-trips rows and reads back identically in pyarrow, pandas and DuckDB."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import dpsweep.results.store as store_module
from dpsweep.results.schema import FILE_SCHEMA, METADATA_KEY, SCHEMA, SCHEMA_VERSION
from dpsweep.results.store import ResultStore, StoreWarning


def _fill(store: ResultStore, make_row) -> None:
    store.append(make_row(trial_id="t1"))
    store.append(make_row(trial_id="t2", weighted_f1=0.7, epsilon_target=0.1, epsilon=0.1))
    store.append(make_row(trial_id="t3", private=False, weighted_f1=0.9))
    store.append(make_row(trial_id="t4", status="failed", epsilon=None, weighted_f1=None,
                          macro_f1=None, error="RuntimeError: out of memory"))
    store.append(make_row(trial_id="t1", dataset="ct-rate", weighted_f1=0.5))


def test_append_writes_one_file_per_trial_in_hive_layout(store, make_row) -> None:
    path = store.append(make_row())
    assert path.endswith("/dataset=mimic-cxr/sweep-a__t0001.parquet")
    written = pq.read_table(path)
    assert written.schema.equals(FILE_SCHEMA, check_metadata=False)
    assert "dataset" not in written.column_names
    assert pq.read_schema(path).metadata[METADATA_KEY] == str(SCHEMA_VERSION).encode()
    assert not [p for p in Path(store.root).rglob("*") if p.name.startswith(".")]


def test_read_round_trips_rows(store, make_row) -> None:
    _fill(store, make_row)
    table = store.read()
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert len(store) == 5 and store.datasets() == ["ct-rate", "mimic-cxr"]
    rows = {(r["dataset"], r["trial_id"]): r for r in table.to_pylist()}
    assert rows[("mimic-cxr", "t3")]["epsilon"] == math.inf
    assert rows[("mimic-cxr", "t4")]["weighted_f1"] is None
    assert rows[("mimic-cxr", "t1")]["started_at"].isoformat() == "2025-01-02T03:04:05+00:00"
    assert store.read("ct-rate").num_rows == 1
    assert store.read("missing").num_rows == 0
    assert store.read(columns=["trial_id", "dataset"]).column_names == ["trial_id", "dataset"]


def test_empty_or_missing_store_reads_empty(tmp_path) -> None:
    store = ResultStore(tmp_path / "nowhere")
    assert len(store) == 0 and store.datasets() == []
    assert store.read().schema.equals(SCHEMA, check_metadata=False)


def test_duplicate_trial_is_refused_unless_overwrite(store, make_row) -> None:
    store.append(make_row())
    with pytest.raises(FileExistsError):
        store.append(make_row(weighted_f1=0.1))
    store.append(make_row(weighted_f1=0.1), overwrite=True)
    assert store.read()["weighted_f1"].to_pylist() == [0.1]


def _canonical(frame: pd.DataFrame) -> list[tuple]:
    frame = frame[sorted(frame.columns)].copy()
    frame["dataset"] = frame["dataset"].astype(str)
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    frame = frame.sort_values(["dataset", "trial_id"]).reset_index(drop=True)
    return [tuple(None if (isinstance(v, float) and math.isnan(v)) or v is None or v is pd.NA
                  else v for v in row) for row in frame.itertuples(index=False)]


def test_pyarrow_pandas_and_duckdb_read_the_same_rows(store, make_row) -> None:
    _fill(store, make_row)
    root = store.root
    ours = store.read().to_pandas()
    by_pyarrow = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    by_pandas = pd.read_parquet(root)
    by_duckdb = duckdb.sql(f"select * from read_parquet('{root}/**/*.parquet', hive_partitioning=1)").df()
    assert by_pyarrow.schema.field("dataset").type == pa.string()
    assert str(duckdb.sql(f"select dataset from read_parquet('{root}/**/*.parquet', "
                          "hive_partitioning=1)").types[0]) == "VARCHAR"
    for other in (by_pyarrow.to_pandas(), by_pandas, by_duckdb):
        assert set(other.columns) == set(SCHEMA.names)
        assert _canonical(other) == _canonical(ours)
    inf_rows = duckdb.sql(f"select count(*) from read_parquet('{root}/**/*.parquet', "
                          "hive_partitioning=1) where epsilon = 'inf'::double").fetchall()[0][0]
    assert inf_rows == 1
    edema = duckdb.sql(f"select per_label_f1->>'Edema' from read_parquet('{root}/**/*.parquet', "
                       "hive_partitioning=1) limit 1").fetchall()[0][0]
    assert float(edema) == 0.7


def test_partition_column_inside_files_would_break_pandas(tmp_path) -> None:
    """Why `dataset` is not stored in the file: pandas (and pyarrow for numeric-looking
    names) refuse a partition column that is also a file column."""
    part = tmp_path / "dataset=mimic-cxr"
    part.mkdir()
    pq.write_table(pa.table({"x": [1], "dataset": ["mimic-cxr"]}), part / "a.parquet")
    with pytest.raises(pa.ArrowTypeError):
        pd.read_parquet(tmp_path)
    numeric = tmp_path / "numeric" / "dataset=2024"
    numeric.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1], "dataset": ["2024"]}), numeric / "a.parquet")
    with pytest.raises(pa.ArrowTypeError):
        ds.dataset(tmp_path / "numeric", format="parquet", partitioning="hive").to_table()


def test_bad_files_are_skipped_with_a_warning_naming_them(store, make_row, caplog) -> None:
    _fill(store, make_row)
    part = Path(store.root) / "dataset=mimic-cxr"
    (part / "truncated.parquet").write_bytes(Path(store.append(make_row(trial_id="t9"))).read_bytes()[:300])
    (part / "sweep-a__t9.parquet").unlink()
    (part / "garbage.parquet").write_bytes(b"PAR1 not really parquet")
    pq.write_table(pa.table({"a": [1, 2]}), part / "foreign.parquet")
    pq.write_table(pa.table({"trial_id": [None]}, schema=pa.schema([("trial_id", pa.string())])),
                   part / "foreign2.parquet")
    (part / ".sweep-a__t7.parquet.abc.tmp").write_bytes(b"partial")
    (part / "notes.txt").write_text("hello")
    with pytest.warns(StoreWarning) as record:
        table = store.read()
    messages = " ".join(str(w.message) for w in record)
    for name in ("truncated.parquet", "garbage.parquet", "foreign.parquet", "foreign2.parquet", "notes.txt"):
        assert name in messages
    assert table.num_rows == 5
    assert ".sweep-a__t7.parquet.abc.tmp" in caplog.text


def test_files_from_other_writers_with_compatible_columns_are_read(store, make_row) -> None:
    """A file with nullable flags, no metadata and missing optional columns still reads."""
    store.append(make_row())
    frame = store.read().drop_columns(["dataset", "micro_f1"]).to_pandas()
    frame["trial_id"] = "t0002"
    frame.to_parquet(Path(store.root) / "dataset=mimic-cxr" / "pandas.parquet")
    table = store.read()
    assert sorted(table["trial_id"].to_pylist()) == ["t0001", "t0002"]
    assert table["micro_f1"].to_pylist().count(None) == 1


def test_append_table_writes_batches_in_the_same_layout(store, make_row) -> None:
    store.append(make_row())
    batch = pa.Table.from_pylist([{**make_row(trial_id=f"b{i}"), "per_label_f1": None,
                                   "config_json": "{}", "dpsweep_version": "x", "schema_version": SCHEMA_VERSION}
                                  for i in range(3)])
    paths = store.append_table(batch)
    assert len(paths) == 1 and "__batch-" in paths[0]
    assert len(store) == 4
    with pytest.raises(ValueError, match="report_text"):
        store.append_table(batch.append_column("report_text", pa.array(["x"] * 3)))


@pytest.mark.parametrize("object_store", [False, True])
def test_non_local_filesystem_writes_final_key(make_row, monkeypatch, object_store) -> None:
    """Other file systems: temp + move; object stores (s3, gcs): the final key directly."""
    if object_store:
        monkeypatch.setattr(store_module, "_OBJECT_STORES", {"mock"})
    mock = pafs._MockFileSystem()
    store = ResultStore("bucket/store", filesystem=mock)
    written = []
    real_write = pq.write_table
    monkeypatch.setattr(pq, "write_table", lambda table, where, **kw: (
        written.append(where), real_write(table, where, **kw)))
    path = store.append(make_row())
    assert path == "bucket/store/dataset=mimic-cxr/sweep-a__t0001.parquet"
    assert (written[0] == path) if object_store else written[0].endswith(".tmp")
    assert store.read().num_rows == 1
    with pytest.raises(FileExistsError):
        store.append(make_row())


def test_read_refuses_a_bad_dataset_name(store) -> None:
    with pytest.raises(ValueError, match="'dataset'"):
        store.read("../elsewhere")


def test_bad_uri_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="results store URI"):
        ResultStore("nosuchscheme://bucket/x")


def test_version_1_files_still_read_with_new_columns_null(store, make_row, tmp_path) -> None:
    """Schema 2 added the trial-setting columns; a store written by version 1 reads on."""
    store.append(make_row(trial_id="new"))
    v1_columns = [f for f in FILE_SCHEMA if f.name not in ("head_lr", "head_clip_share", "clipping", "max_epochs")]
    row = {**make_row(trial_id="old"), "schema_version": 1, "dpsweep_version": "0.1.0",
           "per_label_f1": '{"Edema": 0.7}', "config_json": "{}"}
    old = pa.Table.from_pylist([{k: v for k, v in row.items() if k != "dataset"}],
                               schema=pa.schema(v1_columns).remove_metadata()).replace_schema_metadata(
        {METADATA_KEY: b"1"})
    folder = Path(store.root) / f"dataset={make_row()['dataset']}"
    pq.write_table(old, folder / "old__old.parquet")
    table = store.read()
    rows = {r["trial_id"]: r for r in table.to_pylist()}
    assert set(rows) == {"new", "old"}
    assert rows["old"]["head_lr"] is None and rows["old"]["weighted_f1"] == rows["new"]["weighted_f1"]


def test_rows_breaking_invariants_are_skipped_with_a_warning_naming_the_file(store, make_row) -> None:
    """A file from anywhere: epsilon above its target, or F1 outside [0, 1], never reaches a front."""
    store.append(make_row(trial_id="good"))
    good_file = store.append(make_row(trial_id="over"))
    bad = pq.read_table(good_file)
    bad = bad.set_column(bad.schema.get_field_index("epsilon"), "epsilon", pa.array([5.0]))  # target 1.0
    pq.write_table(bad, good_file)
    with pytest.warns(StoreWarning, match="over.parquet: they break"):
        table = store.read()
    assert table["trial_id"].to_pylist() == ["good"]
