"""A sweep checks its store and names before any data, model or Ray is touched; a row the store
refuses mid-sweep is saved for import; a failed trial's error is read from Tune's text file.
No Ray runtime is started here."""

from __future__ import annotations

import errno
import json

import pytest
import yaml

from dpsweep.cli import main


@pytest.mark.parametrize("change,extra,named", [
    ({"name": "résumé"}, [], "name must be ASCII"),
    ({}, ["--name", "my sweep"], "--name must be ASCII"),
    ({"store": "FILE"}, [], "is a file"),
    ({"dataset": {"name": "2024", "format": "mimic-cxr", "path": "DATA"}}, [], "dataset.name"),
])
def test_bad_names_or_store_refused_before_the_data_is_read(write_space, tmp_path, capsys, change, extra, named):
    (tmp_path / "file").write_text("")
    missing = str(tmp_path / "no-such-data")
    dataset = {"name": "tiny-mimic", "format": "mimic-cxr", "path": missing}
    change = {k: (str(tmp_path / "file") if v == "FILE" else v) for k, v in change.items()}
    if "dataset" in change:
        change["dataset"] = {**change["dataset"], "path": missing}
    space = write_space(dataset=dataset)
    space.write_text(yaml.safe_dump({**yaml.safe_load(space.read_text()), **change}))  # write_space(name=) names the file
    for dry in (["--dry-run"], []):
        assert main(["sweep", str(space), *extra, *dry]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and named in err and "no-such-data" not in err


def test_missing_public_corpus_refused_in_one_line_before_ray(write_space, tmp_path, capsys):
    import ray

    space = write_space()
    spec = yaml.safe_load(space.read_text())
    spec["public_data"] = {"format": "mimic-cxr", "path": str(tmp_path / "no-public")}
    space.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(space), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "public_data (path " in err and "dpsweep data synth" in err
    assert not ray.is_initialized()


def test_dry_run_creates_no_store(write_space, tmp_path, capsys):
    space = write_space()
    space.write_text(yaml.safe_dump({**yaml.safe_load(space.read_text()), "store": str(tmp_path / "new-store")}))
    assert main(["sweep", str(space), "--dry-run"]) == 0
    assert not (tmp_path / "new-store").exists()


def test_row_the_store_refuses_is_saved_once_and_the_sweep_goes_on(tmp_path, capsys):
    from dpsweep.results import ResultStore
    from dpsweep.sweep.callbacks import StoreCallback, SweepProgress
    from tests.results.conftest import _row

    class FullStore(ResultStore):
        def append(self, row, *, overwrite=False):
            raise OSError(errno.ENOSPC, "No space left on device")

    progress = SweepProgress(total=1)
    callback = StoreCallback(store=FullStore(tmp_path / "store"), sweep_id="s", trial_prefix="p", epsilon=8.0,
                             base={}, dataset="mimic-cxr", progress=progress, recovery_dir=tmp_path / "rec")
    row = _row(sweep_id="s", trial_id="p-1")
    assert callback.write_row(row) is False
    assert callback.write_row(row) is False  # the reconcile pass fails again: still one file
    files = list((tmp_path / "rec").glob("*.json"))
    assert len(files) == 1 and progress.recovered == [str(files[0])]
    assert json.loads(files[0].read_text())["trial_id"] == "p-1"
    err = capsys.readouterr().err
    assert "No space left" in err and "dpsweep store import-rows" in err


TRACEBACK = """Failure # 1 (occurred at 2026-01-01_00-00-00)
\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1, ip=127.0.0.1, actor_id=ab, repr=sweep_trial)
  File "/site-packages/ray/tune/trainable/function_trainable.py", line 261, in _trainable_func
    output = fn()
  File "/dpsweep/data/mimic_cxr.py", line 60, in read_mimic_cxr
    raise DataError(message)
dpsweep.errors.DataError: mimic-cxr: data path /gone does not exist; pass the MIMIC-CXR root
"""


def test_failed_trial_error_is_read_from_the_text_file_never_unpickled(tmp_path):
    from dpsweep.sweep.callbacks import error_summary, short_error

    assert error_summary(TRACEBACK) == "DataError: mimic-cxr: data path /gone does not exist; pass the MIMIC-CXR root"
    (tmp_path / "error.txt").write_text(TRACEBACK)
    (tmp_path / "error.pkl").write_bytes(b"\x80\x04 never read")

    class Trial:
        error_file = str(tmp_path / "error.txt")
        pickled_error_file = str(tmp_path / "error.pkl")

        def get_pickled_error(self):
            raise AssertionError("the pickled error must never be loaded")

    assert short_error(Trial()).startswith("DataError: mimic-cxr: data path")
    assert error_summary("Failure # 1 (occurred at x)\nThe actor died unexpectedly.\n") == \
        "trial failed: The actor died unexpectedly."
