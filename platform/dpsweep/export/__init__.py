"""Trained models as files a user can read without dpsweep: save, load, predict.

    save_model(folder, model=..., tokenizer=..., base_model="default", label_names=...,
               thresholds=..., pooling="mean", max_length=128, card=ModelCard(...))
    loaded = load_model(folder)
    probs = predict_probabilities(loaded, texts)

Names are imported lazily, so `dpsweep.export.commands` (the CLI) loads without torch.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "LoadedModel": "artifact",
    "load_model": "artifact",
    "predict_probabilities": "artifact",
    "read_metadata": "artifact",
    "save_model": "artifact",
    "save_trial_model": "artifact",
    "ModelCard": "card",
    "predict_to_file": "predict",
    "add_predict_command": "commands",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'dpsweep.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dpsweep.export.{_NAMES[name]}"), name)
