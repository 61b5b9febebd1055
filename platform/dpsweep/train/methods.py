"""What a trial trains (`method`), and what it takes from a public corpus.

- lora:   LoRA adapters + head on a transformer (the paper's DP-LoRA);
- bitfit: the transformer's bias terms + head (DP-BiTFiT, Bu et al. 2022);
- head:   the head alone on frozen pooled features (computed once by the cache: per sweep, or per trial);
- linear: a linear model on TF-IDF features of a public vocabulary (dpsweep.model.linear).

The private training split reaches every method only through the (DP) optimiser. The public
corpus (`public_data`) gives the linear method its vocabulary, IDF, mean and projection,
and every method a non-private warm start (`public_warm_steps`); it costs no ε, since it
holds none of the private reports.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dpsweep.data import Corpus, DataOptions, load_corpus
from dpsweep.errors import ConfigError, DataError
from dpsweep.settings import TrialConfig

Log = Callable[[str], None]


def load_public_corpus(config: TrialConfig, *, label_names: tuple[str, ...]) -> Corpus | None:
    """The public corpus of `public_data` (None when unset); its labels must be the private data's."""
    if config.public_path is None:
        return None
    options = DataOptions(sections=config.sections, uncertain_policy=config.uncertain_policy,
                          val_fraction=config.val_fraction, seed=config.seed)
    try:
        public = load_corpus(config.public_format, config.public_path, options)
    except DataError as exc:
        hint = ("; write the synthetic one with `dpsweep data synth --format "
                f"{config.public_format} --out {config.public_path} --n 4000`"
                if not Path(config.public_path).exists() and config.public_format in ("mimic-cxr", "ct-rate") else "")
        raise DataError(f"public_data (path {config.public_path}): {exc}{hint}") from None
    if tuple(public.label_names) != tuple(label_names):
        raise ConfigError(f"public_data {config.public_path}: its labels ({len(public.label_names)}: "
                          f"{', '.join(public.label_names[:3])}, ...) are not the private data set's "
                          f"({len(label_names)}: {', '.join(label_names[:3])}, ...); use a public corpus "
                          "with the same labels in the same order (e.g. `dpsweep data synth --format ct-rate` "
                          "for CT-RATE's 18)")
    return public


def public_texts(public: Corpus) -> list[str]:
    return list(public.train.texts) + list(public.val.texts if public.val is not None else [])


def build_trial_model(config: TrialConfig, *, num_labels: int, public: Corpus | None, device: str | torch.device):
    """(model, tokenizer) for the trial's method, seeded, on `device`."""
    from dpsweep.train.loop import seed_everything

    seed_everything(config.seed)
    if config.method == "linear":
        from dpsweep.model.linear import build_linear_classifier, fit_public_features

        if public is None:
            raise ConfigError("method = 'linear' needs public_data for its vocabulary; pass --public-format and "
                              "--public-path")
        features = fit_public_features(public_texts(public), dims=config.linear_dims, seed=config.seed)
        model, tokenizer = build_linear_classifier(features, num_labels=num_labels,
                                                   head_bias_init=config.head_bias_init)
        return model.to(device), tokenizer
    from dpsweep.model import LoraSettings, ModelSpec, load_classifier

    spec = ModelSpec(name_or_path=config.model, pooling=config.pooling, head_bias_init=config.head_bias_init,
                     backbone_dropout=config.backbone_dropout, method=config.method,
                     lora=LoraSettings(rank=config.rank, alpha=config.lora_alpha,
                                       dropout=config.lora_dropout, targets=config.lora_targets,
                                       top_layers=config.lora_layers))
    return load_classifier(spec, num_labels=num_labels, device=device)


def caches_frozen_layers(config: TrialConfig) -> bool:
    """Whether the trial computes its frozen transformer layers once (dpsweep.model.prefix)."""
    if not config.prefix_cache or config.method == "linear":
        return False
    return config.method == "head" or config.lora_layers is not None


def frozen_depth(config: TrialConfig, *, num_layers: int) -> int | None:
    """How many lower layers the trial's cache holds (None: none), as the model will find it.

    head: all of them (the head reads the top layer's output); lora and bitfit with
    `lora_layers` k: the n - k below the first adapted layer (none when k >= n). The sweep
    computes shared states once per distinct depth; each trial takes the stores of its own.
    """
    if not caches_frozen_layers(config):
        return None
    if config.method == "head":
        return num_layers
    depth = num_layers - config.lora_layers
    return depth if depth >= 1 else None


def encode_public(public: Corpus | None, tokenizer, config: TrialConfig):
    """The public corpus tokenised for the warm start (None when the trial takes none)."""
    if not config.public_warm_steps or public is None:
        return None
    from dpsweep.data.types import Split
    from dpsweep.train.batches import encode

    return encode(_concat_splits(Split, public), tokenizer, max_length_tokens=config.max_length)


def warm_start(model, public, config: TrialConfig, *, device: str | torch.device, log: Log) -> None:
    """Train `model` without DP on the encoded public corpus for `public_warm_steps` steps.

    No ε: not one private report is involved. Batches of `public_warm_batch_size` public
    reports (default `batch_size`, also when the private training is full-batch; 1024 for
    the linear method, whose rows are cheap), its own optimiser and schedule, the adapters at
    `public_warm_lr` (default `lr`). A sweep whose trials share every setting the warm start
    reads (`warm_start_key`) runs it once and hands each trial the result (`warm_state`).
    """
    if public is None:
        return
    from dpsweep.train.loop import NonPrivateTrainer, World
    from dpsweep.train.plan import StepPlan

    t0 = time.perf_counter()
    batch = min(len(public), warm_batch_size(config))
    warm = dataclasses.replace(config, epsilon=float("inf"), full_batch=False, batch_size=batch, ema=0.0,
                               lr=config.public_warm_lr or config.lr)
    plan = StepPlan(sample_rate=batch / len(public), steps_per_epoch=-(-len(public) // batch),
                    steps=config.public_warm_steps, sigma=0.0, feasible=True)
    NonPrivateTrainer(model, public, warm, plan, world=World(device=str(device))).run()
    log(f"warm start: {config.public_warm_steps} non-private steps on {len(public)} public reports "
        f"({config.public_format} {config.public_path}) in {time.perf_counter() - t0:.1f} s; no ε spent")


def _concat_splits(split_type, public: Corpus):
    import numpy as np

    parts = [public.train] + ([public.val] if public.val is not None and len(public.val) else [])
    return split_type(texts=[t for p in parts for t in p.texts],
                      labels=np.concatenate([p.labels for p in parts]),
                      mask=np.concatenate([p.mask for p in parts]),
                      groups=[g for p in parts for g in p.groups])


# Settings the warm start never reads: the DP phase's, evaluation's and the private split's.
# A sweep that searches only these (and lr once public_warm_lr is set, batch_size once
# public_warm_batch_size is) computes the warm start once for all its trials.
_NOT_READ_BY_WARM_START = frozenset({
    "epsilon", "delta", "accountant", "privacy_unit", "max_reports_per_patient", "noise", "clip", "clipping",
    "head_clip_share", "sigma", "grad_sample_mode", "max_epochs", "max_steps", "full_batch", "ema",
    "eval_batch_size", "val_fraction", "prefix_cache",
})


def warm_batch_size(config: TrialConfig) -> int:
    """Public reports per warm-start step, before capping at the corpus' size."""
    return config.public_warm_batch_size or (1024 if config.method == "linear" else config.batch_size)


def warm_start_reads(key: str, config: TrialConfig) -> bool:
    """Whether the warm start of `config` depends on setting `key` (False: a sweep may search it)."""
    if key in _NOT_READ_BY_WARM_START:
        return False
    if key == "lr":
        return config.public_warm_lr is None
    if key == "batch_size":
        return config.public_warm_batch_size is None and config.method != "linear"
    return True


def warm_start_key(config: TrialConfig) -> str:
    """Every setting the warm start reads, as one string: equal keys give the same warm start."""
    import json

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if warm_start_reads(f.name, config) and f.name not in ("lr", "batch_size")}
    values.update(lr=config.public_warm_lr or config.lr, batch_size=warm_batch_size(config))
    return json.dumps(values, sort_keys=True, default=str)


def warm_state(model) -> dict[str, torch.Tensor]:
    """The trainable weights of a warm-started model (public data only: sharing them costs no ε)."""
    return {name: p.detach().to("cpu").clone() for name, p in model.named_parameters() if p.requires_grad}


def load_warm_state(model, state: dict[str, torch.Tensor]) -> None:
    """Start `model` from a warm start computed elsewhere (`warm_state` of a model of the same key)."""
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(trainable) != set(state):
        missing = sorted(set(trainable) ^ set(state))[:3]
        raise ValueError(f"the shared warm start does not fit this model (parameters {missing} differ)")
    with torch.no_grad():
        for name, p in trainable.items():
            p.copy_(state[name].to(p.device, p.dtype))
