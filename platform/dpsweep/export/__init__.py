"""Trained models as files a user can read without dpsweep: save, load, predict.

    save_model(folder, model=..., tokenizer=..., base_model="default", label_names=...,
               thresholds=..., pooling="mean", max_length=128, card=ModelCard(...))
    loaded = load_model(folder)
    probs = predict_probabilities(loaded, texts)

Names are imported lazily, so `dpsweep.export.commands` (the CLI) loads without torch.
"""

from __future__ import annotations

from dpsweep import _lazy

_EXPORTS = {
    "artifact": ("LoadedModel", "load_model", "predict_probabilities", "save_model", "save_trial_model",
                 "save_trial_model_to"),
    "metadata": ("copy_model", "read_metadata"),
    "card": ("ModelCard",),
    "predict": ("predict_to_file",),
    "commands": ("add_predict_command",),
}
__getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS)
__all__ = _lazy.export_names(_EXPORTS)
