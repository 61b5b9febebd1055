"""A tiny trained-looking classifier and its saved folder, shared by the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dpsweep.data import CHEXPERT_LABELS
from dpsweep.export import ModelCard, save_model
from dpsweep.model import ModelSpec, load_classifier
from dpsweep.privacy import PrivacyLedger

THRESHOLDS = [round(0.2 + 0.04 * j, 3) for j in range(len(CHEXPERT_LABELS))]
MAX_LENGTH = 64


def perturbed_classifier(base_dir: Path, *, pooling: str = "mean"):
    """A tiny BERT classifier whose LoRA B and head are random (LoRA starts as a no-op)."""
    model, tokenizer = load_classifier(ModelSpec(name_or_path=str(base_dir), pooling=pooling),
                                       num_labels=len(CHEXPERT_LABELS))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return model.eval(), tokenizer


def example_card() -> ModelCard:
    ledger = PrivacyLedger(epsilon_target=8.0, epsilon=7.91, delta=1e-5, sigma=1.16, clip=1.0,
                           sample_rate=1 / 11, steps=264, accountant="prv")
    val = {"weighted_f1": 0.61, "macro_f1": 0.42, "micro_f1": 0.63, "auroc_macro": 0.71,
           "per_label_f1": {name: 0.5 for name in CHEXPERT_LABELS}, "weighted_f1_tuned": 0.66, "macro_f1_tuned": 0.47}
    return ModelCard(ledger=ledger.to_dict(), dataset="mimic-cxr", n_train=269, n_val=14, n_test=17,
                     val_metrics=val, test_metrics={**val, "weighted_f1": 0.58}, git_commit="abc123")


def save_example(model, tokenizer, base_dir: Path, folder: Path, **overrides) -> Path:
    args = dict(model=model, tokenizer=tokenizer, base_model=str(base_dir), label_names=CHEXPERT_LABELS,
                thresholds=THRESHOLDS, pooling=model.pooling, max_length=MAX_LENGTH, card=example_card(),
                data_options={"dataset_format": "mimic-cxr", "sections": "both", "uncertain_policy": "zeros",
                              "val_fraction": 0.2, "seed": 0})
    return save_model(folder, **{**args, **overrides})


@pytest.fixture(scope="session")
def trained(tiny_model_dir):
    """(classifier, tokenizer) with non-trivial outputs."""
    return perturbed_classifier(tiny_model_dir)


@pytest.fixture(scope="session")
def saved_model(trained, tiny_model_dir, tmp_path_factory) -> Path:
    model, tokenizer = trained
    return save_example(model, tokenizer, tiny_model_dir, tmp_path_factory.mktemp("saved") / "model")


def reference_probabilities(model, tokenizer, texts: list[str]) -> np.ndarray:
    """The in-memory classifier's probabilities, through the trial's own evaluation path."""
    from types import SimpleNamespace

    from dpsweep.train.batches import encode, predict

    n, k = len(texts), len(CHEXPERT_LABELS)
    split = SimpleNamespace(texts=texts, labels=np.zeros((n, k)), mask=np.zeros((n, k), bool))
    return predict(model, encode(split, tokenizer, max_length_tokens=MAX_LENGTH), batch_size=8)
