"""References computed on a corpus: the floors match train.metrics.floors, the peer matches
bench.baselines, and a sweep on a split already stored does not recompute them."""

from __future__ import annotations

import argparse
import json

import pytest

from dpsweep.bench.baselines import tfidf_logreg
from dpsweep.bench.references import record_references, reference_metrics
from dpsweep.data import load_corpus
from dpsweep.results.references import read_references
from dpsweep.results.store import ResultStore
from dpsweep.settings import TrialConfig
from dpsweep.train.metrics import floors


@pytest.fixture(scope="module")
def corpus(synth_mimic):
    return load_corpus("mimic-cxr", synth_mimic)


def test_floors_and_peer_equal_their_sources(corpus) -> None:
    got = reference_metrics(corpus, seed=0)
    f = floors(corpus.val.labels, corpus.val.mask, corpus.train.labels, corpus.label_names, seed=0)
    assert got["all_positive"]["weighted_f1"] == f["all_positive_weighted_f1"]
    assert got["label_frequency"]["weighted_f1"] == f["label_frequency_weighted_f1"]
    assert got["label_frequency"]["macro_f1"] == f["label_frequency_macro_f1"]
    peer = tfidf_logreg(corpus, seed=0)
    assert got["tfidf_logreg"]["weighted_f1"] == peer["weighted_f1"]
    assert got["tfidf_logreg"]["weighted_f1_tuned"] == peer["weighted_f1_tuned"]
    # a constant or 0/1 prediction: no threshold changes it, so tuning cannot help a floor
    assert got["all_positive"]["weighted_f1_tuned"] == got["all_positive"]["weighted_f1"]


def test_record_once_per_split(corpus, tmp_path) -> None:
    store = ResultStore(tmp_path / "store")
    config = TrialConfig(data_path="x", dataset_format="mimic-cxr")
    lines: list[str] = []
    assert record_references(store, corpus, config, dataset="mimic-cxr", log=lines.append) is not None
    assert record_references(store, corpus, config, dataset="mimic-cxr", log=lines.append) is None
    assert len(lines) == 1
    rows = read_references(store).to_pylist()
    assert {r["n_train"] for r in rows} == {len(corpus.train)} and {r["seed"] for r in rows} == {0}
    assert {r["reference"] for r in rows} == {"tfidf_logreg", "all_positive", "label_frequency"}


def test_store_references_compute_command(synth_mimic, tmp_path, capsys) -> None:
    from dpsweep.results.commands import add_results_commands

    parser = argparse.ArgumentParser(prog="dpsweep")
    add_results_commands(parser.add_subparsers(dest="command", required=True))
    store = str(tmp_path / "store")
    args = parser.parse_args(["store", "references", "--compute", "--store", store, "--data-path",
                              str(synth_mimic), "--dataset-format", "mimic-cxr", "--format", "json"])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert len(rows) == 3 and {r["dataset"] for r in rows} == {"mimic-cxr"}
    assert "computed" in err


def test_bench_table_rows_carry_the_peer_and_both_floors(corpus) -> None:
    from dpsweep.bench.trials import markdown_table, reference_rows

    rows = reference_rows(reference_metrics(corpus, seed=0))
    assert [r["model"] for r in rows] == ["TF-IDF + logistic regression (non-private)",
                                          "floor: every label positive", "floor: label frequencies"]
    table = markdown_table({"rows": rows})
    assert "(non-private) | ∞ |" in table and "floor: label frequencies | – |" in table
