"""A trial's classifier saved with save_trial_model reproduces the trial's own test metrics."""

from __future__ import annotations

import json

import pytest
import torch

from dpsweep.data import load_corpus
from dpsweep.export import predict_to_file, save_trial_model
from dpsweep.train import TrialConfig
from dpsweep.train.loop import (
    evaluate_trial,
    load_trial_corpus,
    plan_trial,
    trial_ledger,
    trial_model,
)


def test_saved_trial_reproduces_its_test_metrics(tiny_model_dir, synth_mimic, tmp_path):
    config = TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                         max_length=48, sections="impression", seed=3, accountant="rdp")
    corpus = load_trial_corpus(config)
    plan = plan_trial(config, corpus)
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stands in for training: the adapters and head move off their start
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.3)
    result = evaluate_trial(model, tokenizer, config, corpus, plan,
                            ledger=trial_ledger(config, plan, steps=plan.steps), train_seconds=1.0)
    folder = save_trial_model(tmp_path / "model", model=model, tokenizer=tokenizer, result=result)
    meta = json.loads((folder / "dpsweep_model.json").read_text())
    assert meta["data_options"]["sections"] == "impression" and meta["max_length"] == 48
    assert meta["privacy"]["epsilon"] == result.ledger.epsilon and meta["thresholds"] == result.to_dict()["thresholds"]
    assert f"ε (per trial; excludes hyperparameter tuning) | {result.ledger.epsilon:.6g}" in (folder / "README.md").read_text()
    summary = predict_to_file(model_dir=folder, out=tmp_path / "test.csv", dataset_format="mimic-cxr",
                              data_path=synth_mimic, split="test", log=lambda line: None)
    assert summary["n_reports"] == len(load_corpus("mimic-cxr", synth_mimic).test)
    for key, value in result.test.to_dict().items():
        assert summary[key] == pytest.approx(value, abs=1e-9), key
    assert summary["weighted_f1_tuned"] == pytest.approx(result.test_tuned.weighted_f1, abs=1e-9)
