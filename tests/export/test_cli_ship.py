"""Ship a model from the CLI: train --output-dir -> best --export-model -> predict, in one process."""

from __future__ import annotations

import json

import pytest

from dpsweep.cli import main
from dpsweep.results import ResultStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, synth_mimic):
    root = tmp_path_factory.mktemp("ship")
    code = main(["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic), "--model",
                 str(tiny_model_dir), "--max-length", "32", "--max-epochs", "0.5", "--rank", "2", "--epsilon", "8",
                 "--sigma", "1.0", "--accountant", "rdp", "--output-dir", str(root / "model"),
                 "--store", str(root / "store"), "--device", "auto", "--json"])
    assert code == 0
    return root


def test_exported_model_predicts_the_trials_stored_test_metrics(trained, synth_mimic, capsys):
    row = ResultStore(trained / "store").read().to_pylist()[0]
    assert row["model_uri"] == str((trained / "model").resolve())
    capsys.readouterr()
    assert main(["best", "--store", str(trained / "store"), "--dataset", "mimic-cxr", "--max-epsilon", "8",
                 "--export-model", str(trained / "exported"), "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(trained / "exported"), "--dataset-format", "mimic-cxr",
                 "--data-path", str(synth_mimic), "--split", "test", "--threshold", "0.5",
                 "--out", str(trained / "test.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weighted_f1"] == pytest.approx(row["test_weighted_f1"], abs=1e-6)
    assert out["macro_f1"] == pytest.approx(row["test_macro_f1"], abs=1e-6)


def test_export_model_refuses_an_existing_folder_and_cuda_without_a_gpu(trained, synth_mimic, capsys):
    import torch

    (trained / "busy").mkdir()
    (trained / "busy" / "notes.txt").write_text("mine")
    code = main(["best", "--store", str(trained / "store"), "--dataset", "mimic-cxr", "--max-epsilon", "8",
                 "--export-model", str(trained / "busy")])
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert (trained / "busy" / "notes.txt").read_text() == "mine"
    if not torch.cuda.is_available():
        code = main(["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic), "--device", "cuda"])
        err = capsys.readouterr().err
        assert code == 2 and "no CUDA GPU is visible" in err and len(err.strip().splitlines()) == 1


def test_train_refuses_an_output_dir_that_holds_other_files(trained, synth_mimic, tiny_model_dir, capsys):
    (trained / "other").mkdir()
    (trained / "other" / "x.txt").write_text("x")
    code = main(["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic), "--model",
                 str(tiny_model_dir), "--output-dir", str(trained / "other")])
    assert code == 2 and "not empty" in capsys.readouterr().err
