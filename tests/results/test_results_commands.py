"""CLI handlers, called through an argparse parser built with add_results_commands."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math

import pytest
import yaml

from dpsweep.results.commands import add_results_commands


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dpsweep")
    add_results_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def one_dataset(store, make_row) -> str:
    store.append(make_row(trial_id="a", epsilon_target=0.1, epsilon=0.1, weighted_f1=0.5))
    store.append(make_row(trial_id="b", epsilon_target=1.0, epsilon=1.0, weighted_f1=0.7))
    store.append(make_row(trial_id="np", private=False, weighted_f1=0.9))
    return store.root


@pytest.mark.parametrize("command", [
    ["pareto", "--dataset", "mimic-cxr"],
    ["best", "--dataset", "mimic-cxr", "--max-epsilon", "1"],
    ["report", "--out", "OUT"],
])
def test_empty_store_exits_5_with_one_line(command, tmp_path, capsys) -> None:
    argv = [a.replace("OUT", str(tmp_path / "report")) for a in command]
    assert _run([*argv, "--store", str(tmp_path / "empty")]) == 5
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "no results in store" in err


def test_unknown_dataset_names_the_known_ones(one_dataset, capsys) -> None:
    assert _run(["pareto", "--store", one_dataset, "--dataset", "ct-rate"]) == 5
    err = capsys.readouterr().err
    assert "'ct-rate'" in err and "mimic-cxr" in err and err.count("\n") == 1


def test_pareto_json_is_strict_and_sorted(one_dataset, capsys) -> None:
    assert _run(["pareto", "--store", one_dataset, "--dataset", "mimic-cxr", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset"] == "mimic-cxr" and data["references"] == []  # none stored in this store
    rows = data["front"]
    assert [r["trial_id"] for r in rows] == ["a", "b", "np"]
    assert rows[-1]["epsilon"] == "inf" and float(rows[-1]["epsilon"]) == math.inf
    assert {"trial_id", "epsilon", "weighted_f1", "sigma", "clip", "rank", "lr"} <= set(rows[0])
    json.dumps(rows, allow_nan=False)


def test_pareto_table_and_csv(one_dataset, capsys) -> None:
    assert _run(["pareto", "--store", one_dataset, "--dataset", "mimic-cxr"]) == 0
    out = capsys.readouterr().out
    table, references, notes = out.split("\n\n", 2)
    assert references.startswith("no references stored for mimic-cxr")
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["epsilon", "weighted_f1"] and len(lines) == 4
    assert "per trial" in notes and "excludes hyperparameter tuning" in notes and "outside ε" in notes
    assert _run(["pareto", "--store", one_dataset, "--dataset", "mimic-cxr", "--format", "csv",
                 "--metric", "macro_f1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["trial_id"] == "a" and "macro_f1" in rows[0]


def test_best_prints_and_exports(one_dataset, tmp_path, capsys) -> None:
    out_yaml = tmp_path / "best.yaml"
    assert _run(["best", "--store", one_dataset, "--dataset", "mimic-cxr", "--max-epsilon", "0.5",
                 "--export", str(out_yaml)]) == 0
    assert "trial_id" in capsys.readouterr().out
    assert yaml.safe_load(out_yaml.read_text())["lora"] == {"rank": 8}
    assert _run(["best", "--store", one_dataset, "--dataset", "mimic-cxr", "--max-epsilon", "inf",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["trial_id"] == "np"
    assert _run(["best", "--store", one_dataset, "--dataset", "mimic-cxr", "--max-epsilon", "0.01"]) == 5
    assert "no completed trial" in capsys.readouterr().err


def test_bad_input_exits_2(one_dataset, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(["best", "--store", one_dataset, "--dataset", "mimic-cxr", "--max-epsilon", "-1"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        _run(["pareto", "--store", one_dataset, "--dataset", "mimic-cxr", "--metric", "accuracy"])
    assert exit_info.value.code == 2
    assert _run(["pareto", "--store", "nosuchscheme://x", "--dataset", "mimic-cxr"]) == 2


def test_report_command(one_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    assert _run(["report", "--store", one_dataset, "--out", str(out)]) == 0
    assert (out / "index.html").exists() and (out / "pareto_mimic-cxr.png").exists()


def test_selection_by_a_test_metric_is_refused(one_dataset, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(["best", "--store", one_dataset, "--dataset", "mimic-cxr", "--max-epsilon", "8",
              "--metric", "test_weighted_f1"])
    assert exit_info.value.code == 2
    assert "test split must never choose a trial" in capsys.readouterr().err


def test_reproducible_noise_rows_are_left_out_unless_asked(store, make_row, capsys) -> None:
    store.append(make_row(trial_id="secure", weighted_f1=0.6))
    store.append(make_row(trial_id="replay", weighted_f1=0.9, noise="reproducible"))
    with pytest.warns(UserWarning, match="replayable"):
        assert _run(["best", "--store", str(store.root), "--dataset", "mimic-cxr", "--max-epsilon", "8",
                     "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["trial_id"] == "secure"
    assert _run(["best", "--store", str(store.root), "--dataset", "mimic-cxr", "--max-epsilon", "8",
                 "--format", "json", "--include-reproducible"]) == 0
    assert json.loads(capsys.readouterr().out)["trial_id"] == "replay"
