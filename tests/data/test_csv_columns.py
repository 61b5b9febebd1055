"""Your own CSV: `text_column` / `label_columns` name the columns instead of detection."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dpsweep.data import DataOptions, load_corpus
from dpsweep.errors import ConfigError, DataError
from dpsweep.settings import TrialConfig, add_setting_flags, coerce_setting

SECRET = "Jane Roe, a secret left pleural effusion"
HEADER = ("patient_id", "age", "sex", "notes_text", "Pneumonia", "Edema")
NAMED = DataOptions(text_column="notes_text", label_columns=("Edema", "Pneumonia"))


def _rows(n: int, *, start: int = 0) -> list[list[object]]:
    """Two reports per patient; Edema = bit 0 of the row number, Pneumonia = bit 1."""
    return [[f"p{(start + i) // 2}", 40 + i % 50, "MF"[i % 2], f"{SECRET} {start + i}",
             (start + i) >> 1 & 1, (start + i) & 1] for i in range(n)]


@pytest.fixture
def own_csv(tmp_path, build):
    root = tmp_path / "own"
    build.write_csv(root / "train.csv", HEADER, _rows(40))
    return root


def _one_line_error(root, options: DataOptions) -> str:
    with pytest.raises(DataError) as err:
        load_corpus("csv", root, options)
    message = str(err.value)
    assert "\n" not in message and "secret" not in message.lower() and "Roe" not in message, message
    return message


def test_detection_fails_on_an_age_column_but_named_columns_read(own_csv) -> None:
    _one_line_error(own_csv, DataOptions())  # 'sex' and 'notes_text' both look like text
    corpus = load_corpus("csv", own_csv, NAMED)
    assert corpus.label_names == ("Edema", "Pneumonia")  # age and sex are ignored
    assert len(corpus.train) + len(corpus.val) == 40
    assert corpus.groups_are_patients and not set(corpus.train.groups) & set(corpus.val.groups)


def test_label_columns_alone_ignore_a_numeric_age_column(tmp_path, build) -> None:
    header = ("patient_id", "age", "notes_text", "Pneumonia", "Edema")
    build.write_csv(tmp_path / "r" / "train.csv", header, [r[:2] + r[3:] for r in _rows(20)])
    message = _one_line_error(tmp_path / "r", DataOptions())  # age is taken as a label, as before
    assert "column 'age'" in message and "--label-columns" in message
    corpus = load_corpus("csv", tmp_path / "r", DataOptions(label_columns=("Pneumonia", "Edema")))
    assert corpus.label_names == ("Pneumonia", "Edema")
    assert corpus.train.texts[0].startswith("Jane Roe")  # the one non-numeric column left is the text


def test_label_order_is_the_order_named(own_csv) -> None:
    forward = load_corpus("csv", own_csv, NAMED)
    backward = load_corpus("csv", own_csv, DataOptions(text_column="notes_text",
                                                       label_columns=("Pneumonia", "Edema")))
    np.testing.assert_array_equal(forward.train.labels, backward.train.labels[:, ::-1])
    for text, (edema, pneumonia) in zip(forward.train.texts, forward.train.labels, strict=True):
        row = int(text.rsplit(" ", 1)[1])
        assert (edema, pneumonia) == (row & 1, row >> 1 & 1)


@pytest.mark.parametrize("options, column", [
    (DataOptions(text_column="report", label_columns=("Edema",)), "report"),
    (DataOptions(text_column="notes_text", label_columns=("Edema", "Atelectasis")), "Atelectasis"),
    (DataOptions(label_columns=("Cardiomegaly",)), "Cardiomegaly"),
])
def test_a_missing_named_column_names_file_column_and_columns(own_csv, options, column) -> None:
    message = _one_line_error(own_csv, options)
    assert "train.csv" in message and f"no column {column!r}" in message
    assert all(repr(name) in message for name in HEADER)  # the file's column names, no values


def test_named_columns_apply_to_val_and_test_files(own_csv, build) -> None:
    build.write_csv(own_csv / "val.csv", ("notes_text", "Edema", "Pneumonia", "smoker"), [
        [f"{SECRET} {i}", i & 1, 0, "yes"] for i in range(6)])
    build.write_csv(own_csv / "test.csv", ("notes_text", "Edema"), [[SECRET, 1]])
    message = _one_line_error(own_csv, NAMED)
    assert "test.csv" in message and "no column 'Pneumonia'" in message
    (own_csv / "test.csv").unlink()
    corpus = load_corpus("csv", own_csv, NAMED)
    assert (len(corpus.train), len(corpus.val)) == (40, 6)  # val.csv's 'smoker' is ignored


def test_named_label_values_are_still_checked(tmp_path, build) -> None:
    build.write_csv(tmp_path / "r" / "train.csv", ("notes_text", "Edema", "age"), [[SECRET, 1, 50], [SECRET, 2, 60]])
    message = _one_line_error(tmp_path / "r", DataOptions(text_column="notes_text", label_columns=("Edema",)))
    assert "data row 2 column 'Edema' holds '2'" in message and "--label-columns" in message


@pytest.mark.parametrize("changes", [
    {"label_columns": ()},
    {"label_columns": ("A", "A")},
    {"label_columns": ("A", "")},
    {"label_columns": "A,B"},
    {"text_column": ""},
    {"text_column": "A", "label_columns": ("A", "B")},
])
def test_bad_column_options_are_one_line_config_errors(changes) -> None:
    with pytest.raises(ConfigError) as err:
        DataOptions(**changes)
    assert "column" in str(err.value) and "\n" not in str(err.value)


def test_settings_round_trip_yaml_list_and_cli_string(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset_format: csv\ntext_column: notes_text\nlabel_columns: [Edema, Pneumonia]\n")
    config = TrialConfig.from_yaml(path)
    assert config.text_column == "notes_text" and config.label_columns == ("Edema", "Pneumonia")
    assert TrialConfig.from_mapping(config.to_dict()) == config
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    args = parser.parse_args(["--dataset-format", "csv", "--label-columns", "Edema, Pneumonia"])
    flagged = TrialConfig().override(dataset_format=args.dataset_format, label_columns=args.label_columns)
    assert flagged.label_columns == ("Edema", "Pneumonia") and flagged.text_column is None
    assert coerce_setting("label_columns", "a,b") == ("a", "b")


def test_search_space_routes_columns_from_the_dataset_section(tmp_path) -> None:
    from dpsweep.sweep import spec_from_mapping

    dataset = {"format": "csv", "path": str(tmp_path), "text_column": "notes_text",
               "label_columns": ["Pneumonia", "Edema"]}
    spec = spec_from_mapping({"name": "own", "dataset": dataset, "privacy": {"epsilons": [8]},
                              "search": {"rank": 4}}, source="s.yaml")
    assert spec.base_for(8.0).label_columns == ("Pneumonia", "Edema")
    assert spec.base.text_column == "notes_text"


@pytest.mark.parametrize("changes, words", [
    ({"text_column": "notes_text"}, "text_column"),
    ({"dataset_format": "ct-rate", "label_columns": ("Edema",)}, "label_columns"),
    ({"dataset_format": "csv", "label_columns": ("Edema", "Edema")}, "more than once"),
    ({"dataset_format": "csv", "text_column": "Edema", "label_columns": ("Edema",)}, "also one of"),
])
def test_trial_config_refuses_bad_column_settings(changes, words) -> None:
    with pytest.raises(ConfigError) as err:
        TrialConfig(**changes)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_non_csv_format_with_a_text_column_is_refused_naming_the_fix() -> None:
    with pytest.raises(ConfigError, match="--dataset-format csv"):
        TrialConfig(dataset_format="mimic-cxr", text_column="notes_text")


def test_trial_corpus_gets_the_columns(own_csv) -> None:
    from dpsweep.train.loop import load_trial_corpus

    config = TrialConfig(dataset_format="csv", data_path=str(own_csv), text_column="notes_text",
                         label_columns=("Pneumonia", "Edema"))
    assert load_trial_corpus(config).label_names == ("Pneumonia", "Edema")


def test_data_inspect_takes_the_column_flags(own_csv, capsys) -> None:
    from dpsweep.cli import main

    argv = ["data", "inspect", "--format", "csv", "--path", str(own_csv), "--json"]
    assert main(argv) == 2  # detection fails on this file
    assert main([*argv, "--text-column", "notes_text", "--label-columns", "Edema,Pneumonia"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["label_names"] == ["Edema", "Pneumonia"]
    assert sum(s["n"] for s in summary["splits"].values()) == 40
    assert main(["data", "inspect", "--format", "mimic-cxr", "--path", str(own_csv), "--text-column", "x"]) == 2
    assert "--format csv" in capsys.readouterr().err
