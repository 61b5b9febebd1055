"""Reading report files on a process pool gives what one process reads, in the same order."""

from __future__ import annotations

import numpy as np

from dpsweep.data import load_corpus, parallel


def _upper(path: str) -> str:  # module level: the pool pickles it by name
    with open(path) as handle:
        return handle.read().upper()


def test_pool_keeps_the_order_of_the_paths(tmp_path, monkeypatch):
    paths = []
    for i in range(57):  # not a multiple of the chunk size
        path = tmp_path / f"{i:03d}.txt"
        path.write_text(f"report {i}")
        paths.append(str(path))
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(parallel, "CHUNK_FILES", 10)
    assert parallel.map_files(_upper, paths, max_workers=2) == [f"REPORT {i}" for i in range(57)]


def test_mimic_reader_on_a_pool_equals_one_process(synth_mimic, monkeypatch):
    one = load_corpus("mimic-cxr", synth_mimic)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(parallel, "CHUNK_FILES", 64)
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    pooled = load_corpus("mimic-cxr", synth_mimic)
    for name in ("train", "val", "test"):
        a, b = getattr(one, name), getattr(pooled, name)
        assert list(a.texts) == list(b.texts) and list(a.groups) == list(b.groups)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_a_broken_pool_falls_back_to_one_process(tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *args, **kwargs):
            raise BrokenProcessPool("no processes here")

    path = tmp_path / "a.txt"
    path.write_text("x")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Broken)
    assert parallel.map_files(_upper, [str(path)] * 3, max_workers=2) == ["X"] * 3
