"""Nothing lost: a row the store refuses is saved and imported later; `store repair` publishes
what a killed writer finished and removes what it left broken; a store that cannot take a
row is refused before any work."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from dpsweep.errors import UserInputError
from dpsweep.results.recovery import (
    Recovered,
    append_or_recover,
    import_row_files,
    repair_store,
)
from dpsweep.results.store import ResultStore


def _full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_row_the_store_refuses_is_saved_as_json_and_imported_later(store, make_row, tmp_path, monkeypatch):
    row = make_row(trial_id="t-lost")
    with monkeypatch.context() as patch:
        patch.setattr(ResultStore, "append", _full_disk)
        saved = append_or_recover(store, row, folder=tmp_path / "recovered-rows")
    assert isinstance(saved, Recovered) and saved.file.parent == tmp_path / "recovered-rows"
    assert "No space left" in saved.error
    message = saved.message(model_uri="/runs/models/t-lost")
    assert str(saved.file) in message and "dpsweep store import-rows" in message and "/runs/models/t-lost" in message
    assert json.loads(saved.file.read_text())["trial_id"] == "t-lost"
    assert store.datasets() == []

    first, again = import_row_files(store, [str(saved.file)]), import_row_files(store, [str(saved.file)])
    assert first[0].status == "imported" and again[0].status == "already stored"
    direct = ResultStore(tmp_path / "direct")
    direct.append(row)
    assert store.read().to_pylist() == direct.read().to_pylist()  # the same row as an append would store


def test_non_private_row_round_trips_with_inf(store, make_row, tmp_path, monkeypatch):
    row = make_row(trial_id="np", private=False, clip=float("inf"))
    with monkeypatch.context() as patch:
        patch.setattr(ResultStore, "append", _full_disk)
        saved = append_or_recover(store, row, folder=tmp_path / "rec")
    assert '"inf"' in saved.file.read_text()  # dpsweep's one JSON convention, strict JSON
    assert import_row_files(store, [str(saved.file)])[0].status == "imported"
    stored = store.read().to_pylist()[0]
    assert stored["epsilon"] == stored["clip"] == float("inf")


def test_unreadable_or_invalid_row_files_are_refused_by_name(store, make_row, tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{not json")
    bad_row = tmp_path / "b.json"
    bad_row.write_text(json.dumps({**make_row(), "started_at": "2025-01-01T00:00:00+00:00", "weighted_f1": 3}))
    results = import_row_files(store, [str(bad_json), str(bad_row), str(tmp_path / "missing.json")])
    assert [r.status for r in results] == ["refused"] * 3
    assert "weighted_f1" in results[1].detail


def test_write_that_cannot_even_be_recovered_says_so(store, make_row, tmp_path, monkeypatch):
    monkeypatch.setattr(ResultStore, "append", _full_disk)
    monkeypatch.setattr("dpsweep.results.recovery.save_row", _full_disk)
    with pytest.raises(UserInputError, match="nor saved"):
        append_or_recover(store, make_row(), folder=tmp_path / "rec")


# ---- repair ------------------------------------------------------------------------------

def _temp_copy(published: str) -> Path:
    """The temp file a writer killed after publishing, before removing it, leaves behind."""
    src = Path(published)
    tmp = src.parent / f".{src.name}.{uuid.uuid4().hex}.tmp"
    shutil.copy(src, tmp)
    return tmp


def test_repair_publishes_a_complete_temp_file_and_removes_a_truncated_one(store, make_row, tmp_path):
    scratch = ResultStore(tmp_path / "scratch")
    finished = scratch.append(make_row(trial_id="finished"))
    broken = scratch.append(make_row(trial_id="broken"))
    young = scratch.append(make_row(trial_id="young"))
    store.append(make_row(trial_id="kept"))
    partition = Path(store.root) / "dataset=mimic-cxr"
    complete = partition / f".{Path(finished).name}.{uuid.uuid4().hex}.tmp"
    shutil.copy(finished, complete)
    truncated = partition / f".{Path(broken).name}.{uuid.uuid4().hex}.tmp"
    truncated.write_bytes(Path(broken).read_bytes()[:300])
    fresh = partition / f".{Path(young).name}.{uuid.uuid4().hex}.tmp"
    shutil.copy(young, fresh)
    past = time.time() - 3600
    for path in (complete, truncated):
        os.utime(path, (past, past))

    actions = {Path(a.path).name: a for a in repair_store(store, min_age_s=60)}
    assert actions[Path(finished).name].action == "published"
    assert actions[truncated.name].action == "removed" and "incomplete" in actions[truncated.name].detail
    assert actions[fresh.name].action == "kept"
    assert not complete.exists() and not truncated.exists() and fresh.exists()
    assert sorted(store.read()["trial_id"].to_pylist()) == ["finished", "kept"]

    assert repair_store(store, min_age_s=0)[0].action == "published"  # the young one, when told
    assert sorted(store.read()["trial_id"].to_pylist()) == ["finished", "kept", "young"]
    assert not [p for p in partition.iterdir() if p.name.endswith(".tmp")]


def test_repair_removes_a_temp_file_whose_final_name_exists(store, make_row):
    published = store.append(make_row(trial_id="t1"))
    tmp = _temp_copy(published)
    actions = repair_store(store, min_age_s=0)
    assert [(a.action, "already published" in a.detail) for a in actions] == [("removed", True)]
    assert not tmp.exists() and store.read().num_rows == 1


def test_repair_removes_a_temp_file_whose_row_breaks_the_schema(store, make_row, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    partition = Path(store.root) / "dataset=mimic-cxr"
    partition.mkdir(parents=True)
    tmp = partition / f".s__t.parquet.{uuid.uuid4().hex}.tmp"
    pq.write_table(pa.table({"sweep_id": ["s"], "trial_id": ["t"], "report_text": ["x"]}), tmp)
    assert [a.action for a in repair_store(store, min_age_s=0)] == ["removed"]
    assert not tmp.exists()


def test_repair_of_an_empty_or_missing_store_does_nothing(tmp_path):
    assert repair_store(ResultStore(tmp_path / "none"), min_age_s=0) == []


# ---- the store is checked before any work ------------------------------------------------

def test_store_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "store"
    path.write_text("")
    for create in (True, False):
        with pytest.raises(UserInputError, match="is a file"):
            ResultStore(path).check_writable(create=create)


def test_store_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserInputError, match="not writable"):
        ResultStore(tmp_path / "file" / "store").check_writable()
    with pytest.raises(UserInputError, match="which is a file"):
        ResultStore(tmp_path / "file" / "store").check_writable(create=False)


class _ReadOnly:
    """A local file system that refuses writes, as a read-only mount does (tests run as root)."""

    def __init__(self):
        import pyarrow.fs as pafs

        self._fs = pafs.LocalFileSystem()

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def open_output_stream(self, *_args, **_kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")


def test_store_check_writes_and_removes_a_probe(tmp_path):
    root = tmp_path / "new" / "store"
    ResultStore(root).check_writable(dataset="mimic-cxr")
    assert root.is_dir() and list(root.iterdir()) == []
    ResultStore(tmp_path / "dry").check_writable(create=False)
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing
    with pytest.raises(UserInputError, match="not writable.*Read-only"):
        ResultStore(str(root), filesystem=_ReadOnly()).check_writable()


def test_store_check_refuses_a_nearly_full_disk(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("dpsweep.results.store.shutil.disk_usage", lambda _p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(UserInputError, match="100 bytes free"):
        ResultStore(tmp_path / "store").check_writable()
