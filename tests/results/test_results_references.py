"""The references sidecar: the non-private TF-IDF peer and the floors beside the trial rows."""

from __future__ import annotations

import argparse
import json
import warnings

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dpsweep.results.commands import add_results_commands
from dpsweep.results.references import (
    REFERENCES_FILE,
    read_references,
    reference_lines,
    reference_rows,
    write_references,
)

SPLIT = {"val_fraction": 0.2, "seed": 0, "n_train": 1000, "n_val": 200, "sections": "both",
         "uncertain_policy": "zeros"}
VALUES = {"tfidf_logreg": {"weighted_f1": 0.777, "macro_f1": 0.6},
          "all_positive": {"weighted_f1": 0.4, "macro_f1": 0.3},
          "label_frequency": {"weighted_f1": 0.286, "macro_f1": 0.2}}


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dpsweep")
    add_results_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _store_refs(store, *, dataset: str = "mimic-cxr", split: dict = SPLIT, values: dict = VALUES) -> None:
    write_references(store, reference_rows(values, dataset=dataset, dataset_format="mimic-cxr", split=split))


@pytest.fixture
def with_refs(store, make_row):
    store.append(make_row(trial_id="a", epsilon_target=1.0, epsilon=1.0, weighted_f1=0.5))
    store.append(make_row(trial_id="np", private=False, weighted_f1=0.7))
    _store_refs(store)
    return store


def test_sidecar_is_replaced_by_key_and_keeps_the_others(store) -> None:
    _store_refs(store)
    _store_refs(store, dataset="ct-rate")
    _store_refs(store, values={"tfidf_logreg": {"weighted_f1": 0.8}})
    table = read_references(store)
    assert table.num_rows == 12  # 6 mimic-cxr + 6 ct-rate: one value replaced, none lost
    peer = [r for r in table.to_pylist() if r["dataset"] == "mimic-cxr" and r["reference"] == "tfidf_logreg"
            and r["metric"] == "weighted_f1"]
    assert [r["value"] for r in peer] == [0.8]
    assert "non-private" in peer[0]["label"]
    direct = pq.read_table(f"{store.root}/{REFERENCES_FILE}")  # pyarrow reads it on its own
    assert direct.num_rows == 12 and read_references(store, "ct-rate").num_rows == 6


def test_sidecar_is_invisible_to_the_store_and_dataset_readers(with_refs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert with_refs.read().num_rows == 2
    hive = ds.dataset(with_refs.root, format="parquet", partitioning="hive").to_table()
    assert hive.num_rows == 2 and "reference" not in hive.column_names
    assert not REFERENCES_FILE.endswith(".parquet")  # DuckDB's STORE/**/*.parquet glob skips it


def test_lines_match_the_split_of_the_rows(with_refs, make_row) -> None:
    rows = with_refs.read("mimic-cxr")
    lines = reference_lines(read_references(with_refs), rows, dataset="mimic-cxr", metric="weighted_f1",
                            store_uri="S")
    assert lines[0] == ("references (weighted_f1): TF-IDF + logistic regression (non-private) 0.777; "
                        "floors: every label positive 0.400, label frequencies 0.286")
    assert "not private" in lines[1]
    other = rows.set_column(rows.schema.get_field_index("n_train"), "n_train", [[5] * rows.num_rows])
    missing = reference_lines(read_references(with_refs), other, dataset="mimic-cxr", metric="weighted_f1",
                              store_uri="S")
    assert len(missing) == 1 and missing[0].startswith("no references stored for mimic-cxr")
    assert "dpsweep store references --compute --store S" in missing[0]


def test_pareto_and_best_show_the_references(with_refs, capsys) -> None:
    root = with_refs.root
    assert _run(["pareto", "--store", root, "--dataset", "mimic-cxr"]) == 0
    out = capsys.readouterr().out
    assert "TF-IDF + logistic regression (non-private) 0.777" in out and "every label positive 0.400" in out
    assert _run(["pareto", "--store", root, "--dataset", "mimic-cxr", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["trial_id"] for r in data["front"]] == ["a", "np"]
    refs = {r["reference"]: r["value"] for r in data["references"][0]["references"]}
    assert refs == {"tfidf_logreg": 0.777, "all_positive": 0.4, "label_frequency": 0.286}
    assert _run(["pareto", "--store", root, "--dataset", "mimic-cxr", "--metric", "macro_f1"]) == 0
    assert "(non-private) 0.600" in capsys.readouterr().out
    assert _run(["best", "--store", root, "--dataset", "mimic-cxr", "--max-epsilon", "8"]) == 0
    assert "TF-IDF + logistic regression (non-private) 0.777" in capsys.readouterr().out
    assert _run(["best", "--store", root, "--dataset", "mimic-cxr", "--max-epsilon", "8", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["references"][0]["split"]["n_train"] == 1000


def test_a_store_without_references_says_how_to_compute_them(store, make_row, capsys) -> None:
    store.append(make_row(trial_id="a"))
    assert _run(["pareto", "--store", store.root, "--dataset", "mimic-cxr"]) == 0
    assert "no references stored for mimic-cxr" in capsys.readouterr().out
    assert _run(["store", "references", "--store", store.root]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dpsweep store references --compute" in err


def test_store_references_lists_them(with_refs, capsys) -> None:
    assert _run(["store", "references", "--store", with_refs.root, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["reference"] for r in rows] == ["TF-IDF + logistic regression (non-private)",
                                              "every label positive", "label frequencies"]
    assert rows[0]["weighted_f1"] == 0.777 and rows[0]["n_train"] == 1000


def test_compute_needs_a_data_set(store, capsys) -> None:
    assert _run(["store", "references", "--compute", "--store", store.root]) == 2
    assert "--data-path" in capsys.readouterr().err
