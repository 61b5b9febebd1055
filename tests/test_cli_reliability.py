"""One exit-code scheme for every command, and no trained trial lost to a store that fails
(in-process: `dpsweep.cli.main`, no child processes)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from dpsweep import cli
from dpsweep.cli import main
from dpsweep.errors import PrivacyGuardError, UserInputError
from dpsweep.results import ResultStore

SYNTH = ["data", "synth", "--format", "mimic-cxr", "--out", "unused"]


def _raising(exc: BaseException):
    def command(_args):
        raise exc

    return command


@pytest.mark.parametrize("exc,code", [
    (UserInputError("bad value"), 2),
    (RuntimeError("boom"), 1),
    (PrivacyGuardError("q differs"), 1),  # a broken privacy invariant is a bug, not bad input
    (KeyboardInterrupt(), 130),
])
def test_every_outcome_has_its_exit_code_and_one_line(exc, code, monkeypatch, capsys):
    monkeypatch.delenv("DPSWEEP_DEBUG", raising=False)
    monkeypatch.setattr(cli, "_cmd_synth", _raising(exc))
    assert main(SYNTH) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if code == 1:
        assert err.startswith(f"dpsweep: internal error (a bug): {type(exc).__name__}: {exc}; "
                              "please report it with the command you ran")


def test_debug_shows_the_traceback_of_a_bug(monkeypatch, capsys):
    monkeypatch.setenv("DPSWEEP_DEBUG", "1")
    monkeypatch.setattr(cli, "_cmd_synth", _raising(RuntimeError("boom")))
    assert main(SYNTH) == 1
    err = capsys.readouterr().err
    assert err.startswith("dpsweep: internal error (a bug): RuntimeError: boom") and "Traceback" in err


@pytest.mark.parametrize("command", [
    ["pareto", "--dataset", "mimic-cxr"],
    ["best", "--dataset", "mimic-cxr", "--max-epsilon", "1"],
    ["report", "--out", "OUT"],
])
def test_nothing_found_is_exit_5(command, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path / "report")) for a in command]
    assert main([*argv, "--store", str(tmp_path / "empty")]) == 5
    assert "no results in store" in capsys.readouterr().err


# ---- train: the store is checked first; a row it refuses after training is kept -----------

@pytest.fixture
def train_args(tiny_model_dir, synth_mimic) -> list[str]:
    return ["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic), "--model",
            str(tiny_model_dir), "--max-length", "32", "--max-epochs", "0.3", "--rank", "2", "--epsilon", "8",
            "--sigma", "1.0", "--accountant", "rdp", "--json"]


@pytest.mark.parametrize("extra,named", [
    (["--sweep-id", "my sweep"], "--sweep-id"),
    (["--dataset-name", "2024-reports"], "--dataset-name"),
    (["--store", "FILE"], "is a file"),
])
def test_bad_store_or_names_are_refused_before_any_data_is_read(extra, named, tmp_path, capsys):
    """The data path does not exist: had the data been read first, its error would be the line."""
    (tmp_path / "file").write_text("")
    extra = [str(tmp_path / "file") if a == "FILE" else a for a in extra]
    argv = ["train", "--dataset-format", "mimic-cxr", "--data-path", str(tmp_path / "no-such-data"),
            "--store", str(tmp_path / "store"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err and "no-such-data" not in err


def test_csv_folder_starting_with_a_digit_needs_dataset_name(tmp_path, capsys):
    data = tmp_path / "2024"
    data.mkdir()
    assert main(["train", "--dataset-format", "csv", "--data-path", str(data), "--store", str(tmp_path / "s")]) == 2
    assert "--dataset-name" in capsys.readouterr().err


def test_row_the_store_refuses_after_training_goes_to_recovered_rows(train_args, tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(ResultStore, "append", full_disk)  # the disk fills up during training
        code = main([*train_args, "--store", str(store), "--dataset-name", "reports",
                     "--output-dir", str(tmp_path / "model")])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out)["status"] == "completed"  # the results are still shown
    files = list((tmp_path / "recovered-rows").glob("*.json"))
    assert len(files) == 1
    line = err.strip().splitlines()[-1]
    assert str(files[0]) in line and "No space left" in line and "dpsweep store import-rows" in line
    assert "model is kept at" in line and (tmp_path / "model").is_dir()

    assert main(["store", "import-rows", str(files[0]), "--store", str(store)]) == 0
    row = ResultStore(store).read().to_pylist()[0]
    assert row["dataset"] == "reports" and row["status"] == "completed"
    assert row["model_uri"] == str((tmp_path / "model").resolve())


def test_store_repair_command_prints_what_it_did(tmp_path, capsys):
    partition = Path(tmp_path / "store" / "dataset=mimic-cxr")
    partition.mkdir(parents=True)
    (partition / f".s__t.parquet.{'0' * 32}.tmp").write_bytes(b"PAR1 truncated")
    assert main(["store", "repair", "--store", str(tmp_path / "store"), "--min-age-s", "0"]) == 0
    err = capsys.readouterr().err
    assert "removed:" in err and "0 published, 1 removed, 0 kept" in err
    assert main(["store", "repair", "--store", str(tmp_path / "store"), "--min-age-s", "-1"]) == 2
