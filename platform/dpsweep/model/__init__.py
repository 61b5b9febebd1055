"""Classifiers from a local model folder or the embedded default, with LoRA adapters.

The names below are imported on first use: ``resolve_model_path`` and ``LoraSettings``
need no torch; the classifier names load torch (and transformers when a model is built).
"""

from __future__ import annotations

from dpsweep import _lazy

_EXPORTS = {
    "classifier": ("POOLINGS", "ModelSpec", "PooledClassifier", "build_classifier",
                   "classifier_from_config", "load_classifier", "pool", "trainable_parameters"),
    "loading": ("DEFAULT_MODEL", "resolve_model_path"),
    "lora": ("LoraSettings", "apply_lora", "lora_targets_for"),
}
__getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS)
__all__ = _lazy.export_names(_EXPORTS)
