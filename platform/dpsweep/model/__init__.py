"""Classifiers from a local model folder or the embedded default, with LoRA adapters."""

from __future__ import annotations

from dpsweep.model.classifier import (
    POOLINGS,
    ModelSpec,
    PooledClassifier,
    build_classifier,
    load_classifier,
    pool,
    trainable_parameters,
)
from dpsweep.model.loading import DEFAULT_MODEL, resolve_model_path
from dpsweep.model.lora import LoraSettings, apply_lora, lora_targets_for

__all__ = [
    "DEFAULT_MODEL",
    "POOLINGS",
    "LoraSettings",
    "ModelSpec",
    "PooledClassifier",
    "apply_lora",
    "build_classifier",
    "load_classifier",
    "lora_targets_for",
    "pool",
    "resolve_model_path",
    "trainable_parameters",
]
