"""predict_to_file and `dpsweep predict`: outputs, metrics, refusals."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dpsweep.data import CHEXPERT_LABELS, load_corpus
from dpsweep.errors import UserInputError
from dpsweep.export import load_model, predict_probabilities, predict_to_file
from dpsweep.export.commands import add_predict_command
from dpsweep.train.metrics import evaluate

REPO = Path(__file__).resolve().parents[2]


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _write_input(path: Path, split, *, with_labels: bool, text_column: str = "text") -> Path:
    header = ["study", text_column, *(CHEXPERT_LABELS if with_labels else ())]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, text in enumerate(split.texts):
            labels = ["" if not split.mask[i, j] else str(int(split.labels[i, j])) for j in range(split.n_labels)]
            writer.writerow([f"s{i}", text, *(labels if with_labels else ())])
    return path


@pytest.fixture(scope="module")
def corpus(synth_mimic):
    return load_corpus("mimic-cxr", synth_mimic)


def test_csv_with_labels_gives_train_metrics(saved_model, corpus, tmp_path):
    source = _write_input(tmp_path / "in.csv", corpus.test, with_labels=True)
    out = tmp_path / "pred.csv"
    summary = predict_to_file(model_dir=saved_model, out=out, input_csv=source, batch_size=8)
    header, rows = _read_csv(out)
    assert header == ["row", *(f"prob_{n}" for n in CHEXPERT_LABELS), *CHEXPERT_LABELS]
    assert [int(r[0]) for r in rows] == list(range(len(corpus.test)))
    k = len(CHEXPERT_LABELS)
    probs = np.array([[float(v) for v in r[1 : 1 + k]] for r in rows], dtype=np.float32)
    hard = np.array([[int(v) for v in r[1 + k :]] for r in rows])
    loaded = load_model(saved_model)
    direct = predict_probabilities(loaded, corpus.test.texts, batch_size=8)
    assert np.array_equal(probs, direct)  # 9 significant digits round-trip a float32
    assert np.array_equal(hard, probs >= loaded.thresholds)
    plain = evaluate(probs, corpus.test.labels, corpus.test.mask, CHEXPERT_LABELS)
    tuned = evaluate(probs, corpus.test.labels, corpus.test.mask, CHEXPERT_LABELS, thresholds=loaded.thresholds)
    for key, value in plain.to_dict().items():
        assert summary[key] == value, key
    assert summary["weighted_f1_tuned"] == tuned.weighted_f1 and summary["macro_f1_tuned"] == tuned.macro_f1
    assert summary["n_reports"] == len(corpus.test) and summary["threshold"] == "tuned"
    text = out.read_text()
    assert not any(t[:40] in text for t in corpus.test.texts) and "s0" not in text  # no text, no ids


def test_csv_without_labels_and_fixed_threshold(saved_model, corpus, tmp_path):
    source = _write_input(tmp_path / "in.csv", corpus.val, with_labels=False, text_column="report")
    out = tmp_path / "pred.csv"
    summary = predict_to_file(model_dir=saved_model, out=out, input_csv=source, text_column="report",
                              threshold="0.5")
    assert "weighted_f1" not in summary and summary["threshold"] == 0.5
    _, rows = _read_csv(out)
    k = len(CHEXPERT_LABELS)
    probs = np.array([[float(v) for v in r[1 : 1 + k]] for r in rows], dtype=np.float32)
    assert np.array_equal(np.array([[int(v) for v in r[1 + k :]] for r in rows]), probs >= 0.5)


def test_dataset_split_to_parquet(saved_model, synth_mimic, corpus, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr("dpsweep.export.predict.PROGRESS_MIN_REPORTS", 5)
    out = tmp_path / "pred.parquet"
    lines: list[str] = []
    summary = predict_to_file(model_dir=saved_model, out=out, dataset_format="mimic-cxr", data_path=synth_mimic,
                              split="test", log=lines.append)
    table = pq.read_table(out)
    assert table.num_rows == len(corpus.test) and table.column_names[0] == "row"
    probs = np.stack([table.column(f"prob_{n}").to_numpy() for n in CHEXPERT_LABELS], axis=1)
    expected = evaluate(probs, corpus.test.labels, corpus.test.mask, CHEXPERT_LABELS)
    assert summary["weighted_f1"] == expected.weighted_f1 and summary["per_label_f1"] == expected.reported_per_label_f1()
    assert summary["auroc_macro"] == expected.auroc_macro
    assert any("data options" in line for line in lines)
    assert any(line.startswith(f"predicted {len(corpus.test)}/{len(corpus.test)} reports (100%)") for line in lines)


def test_refuses_to_overwrite_without_force(saved_model, corpus, tmp_path):
    source = _write_input(tmp_path / "in.csv", corpus.test, with_labels=False)
    out = tmp_path / "pred.csv"
    out.write_text("keep me")
    with pytest.raises(UserInputError, match="exists"):
        predict_to_file(model_dir=saved_model, out=out, input_csv=source)
    assert out.read_text() == "keep me"
    predict_to_file(model_dir=saved_model, out=out, input_csv=source, force=True)
    assert out.read_text().startswith("row,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "pred.csv"]


def _refused(tmp_path, match: str, **kwargs) -> str:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UserInputError, match=match) as err:
        predict_to_file(**kwargs)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    return str(err.value)


def test_bad_inputs_are_one_line_and_write_nothing(saved_model, corpus, synth_mimic, tmp_path):
    source = _write_input(tmp_path / "in.csv", corpus.test, with_labels=False)
    out = tmp_path / "pred.csv"
    message = _refused(tmp_path, "no column 'body'", model_dir=saved_model, out=out, input_csv=source,
                       text_column="body")
    assert str(source) in message and "study, text" in message
    assert not any(t[:30] in message for t in corpus.test.texts)
    _refused(tmp_path, "does not exist", model_dir=saved_model, out=out, input_csv=tmp_path / "none.csv")
    _refused(tmp_path, "must end in", model_dir=saved_model, out=tmp_path / "pred.json", input_csv=source)
    _refused(tmp_path, "threshold must be", model_dir=saved_model, out=out, input_csv=source, threshold="high")
    _refused(tmp_path, "not both", model_dir=saved_model, out=out, input_csv=source, dataset_format="csv",
             data_path=tmp_path)
    _refused(tmp_path, "no reports given", model_dir=saved_model, out=out)
    _refused(tmp_path, "no 'dev' split", model_dir=saved_model, out=out, dataset_format="mimic-cxr",
             data_path=synth_mimic, split="dev")
    _refused(tmp_path, "not a dpsweep model", model_dir=tmp_path, out=out, input_csv=source)
    partial = tmp_path / "partial.csv"
    partial.write_text("text,Edema\nsome words,1\n")
    _refused(tmp_path, "1 of the model's 14 label columns", model_dir=saved_model, out=out, input_csv=partial)
    partial.unlink()


def test_dataset_with_other_labels_is_refused(saved_model, tmp_path):
    from dpsweep.data import write_synthetic

    ct = write_synthetic("ct-rate", tmp_path / "ct", n=30, seed=0)
    _refused(tmp_path, "data set labels differ from the model's", model_dir=saved_model,
             out=tmp_path / "pred.csv", dataset_format="ct-rate", data_path=ct, split="val")


def test_cli_predict_json(saved_model, corpus, tmp_path, capsys):
    source = _write_input(tmp_path / "in.csv", corpus.test, with_labels=True)
    parser = argparse.ArgumentParser(prog="dpsweep")
    add_predict_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["predict", "--model", str(saved_model), "--input", str(source),
                              "--out", str(tmp_path / "p.parquet"), "--json", "--batch-size", "16"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_reports"] == len(corpus.test) and 0 <= result["weighted_f1"] <= 1
    args = parser.parse_args(["predict", "--model", str(saved_model), "--input", str(source),
                              "--out", str(tmp_path / "p.csv")])
    assert args.func(args) == 0
    assert "weighted F1" in capsys.readouterr().out


def test_commands_module_imports_without_torch():
    code = ("import sys, argparse\n"
            "from dpsweep.export.commands import add_predict_command\n"
            "add_predict_command(argparse.ArgumentParser().add_subparsers())\n"
            "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
