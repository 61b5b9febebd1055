"""Multi-label classifier: transformer body, pooled representation, linear head.

The head is our own rather than the stock `*ForSequenceClassification` one so that
every architecture gets the same pooling choice: sentence-embedding checkpoints such as
MiniLM were trained for mean pooling, while the stock BERT head reads [CLS] through an
untrained pooler, which costs dearly under DP noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dpsweep.model.loading import DEFAULT_MODEL, load_backbone, load_tokenizer, resolve_model_path
from dpsweep.model.lora import LoraSettings, apply_lora
from dpsweep.model.prefix import (
    MEMORY_BUDGET_BYTES,
    PrefixCache,
    PrefixStates,
    estimated_bytes,
    fill_cache,
    first_adapted_layer,
    install_prefix,
    layer_list,
    sequence_key,
)

Pooling = Literal["mean", "cls", "last"]
POOLINGS: tuple[str, ...] = ("mean", "cls", "last")


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how it becomes a classifier."""

    name_or_path: str = DEFAULT_MODEL
    pooling: Pooling = "mean"
    lora: LoraSettings = field(default_factory=LoraSettings)
    # A fixed prior logit for every label (sigmoid(-2) = 0.12): not fitted to the data, so
    # it spends no privacy, and it spares the model the all-positive start.
    head_bias_init: float = -2.0
    # Dropout inside the frozen backbone only adds noise to a DP gradient that is noisy
    # already (Li et al. 2022 found DP fine-tuning better without it): off by default.
    backbone_dropout: bool = False
    # lora: adapters + head; bitfit: biases (of the top lora.top_layers layers) + head; head: head only
    method: str = "lora"


class PooledClassifier(nn.Module):
    """Backbone -> pooling over non-padding tokens -> linear head, one logit per label."""

    def __init__(self, backbone: nn.Module, num_labels: int, *, pooling: Pooling, head_bias_init: float):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.head = nn.Linear(backbone.config.hidden_size, num_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.constant_(self.head.bias, head_bias_init)
        self.prefix_cache = None  # set by enable_prefix_cache

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        cache = self.prefix_cache
        cached = cache.batch(input_ids, attention_mask) if cache is not None else None
        if cached is not None:
            cache.prefix.cached = cached
        try:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            if cache is not None:
                cache.prefix.cached = None
        return self.head(pool(hidden, attention_mask, self.pooling))

    def enable_prefix_cache(self, sequences, *, pad_id: int, max_bytes: int = MEMORY_BUDGET_BYTES,
                            states: PrefixStates | list[PrefixStates] | None = None, folder: str | None = None,
                            public=None) -> str:
        """Cache the frozen layers' output for `sequences` (see dpsweep.model.prefix).

        Returns why it did not, or "" when the cache is on. Needs LoRA on top layers only
        and no dropout in the frozen layers (their output must be a fixed function).
        `states` are stores computed earlier for the same model (a sweep computes them once for
        all its trials), used only when taken at this model's depth (its first adapted layer);
        sequences they lack are computed here, in memory up to `max_bytes` (fp16), else
        memory-mapped in `folder` (refused without one). `public`: warm-start reports, cached
        in a store of their own.
        """
        trainable = [name for name, p in self.backbone.named_parameters() if p.requires_grad]
        first = first_adapted_layer(self.backbone)
        if not trainable:  # method head: every layer is frozen, cache the top layer's output
            layers = layer_list(self.backbone)
            first = len(layers) if layers is not None else None
        elif any(not re.search(r"\.(\d+)\.", name) for name in trainable):
            return "a trainable parameter sits outside the numbered layers (e.g. the embeddings)"
        if first is None or first < 1:
            return "LoRA adapts the lowest layer"
        if any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.backbone.modules()):
            return "backbone dropout is on"
        if layer_list(self.backbone) is None:
            return f"no layer list found in model type {self.backbone.config.model_type!r}"
        # another lora_layers makes the frozen prefix another function of the tokens: not reused
        shared = [s for s in ([states] if isinstance(states, PrefixStates) else states or []) if s.depth == first]
        hidden = self.backbone.config.hidden_size
        missing = [[s for s in group if not any(sequence_key(s) in store for store in shared)]
                   for group in (public if public is not None else [], sequences)]
        size = sum(estimated_bytes(group, hidden) for group in missing)
        if size > max_bytes and folder is None:
            return (f"the cache would take {size / 2**30:.1f} GiB in fp16, above the in-memory budget of "
                    f"{max_bytes / 2**30:.1f} GiB, and no folder was given to memory-map it")
        prefix = install_prefix(self.backbone, first)
        if prefix is None:
            return "the layers are already cached"
        cache = PrefixCache(prefix, first)
        cache.stores.extend(shared)
        # Public reports (warm start) are batched apart from the private ones: batch padding
        # changes float rounding, and a public report's states must not depend on private data.
        for group in missing:
            if not len(group):
                continue
            store = PrefixStates.allocate(group, hidden, depth=first, folder=folder if size > max_bytes else None)
            fill_cache(cache, lambda ids, mask: self.backbone(input_ids=ids, attention_mask=mask), store,
                       pad_id=pad_id, device=self.head.weight.device)
            cache.stores.append(store)
        self.prefix_cache = cache
        return ""


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Reduce [batch, tokens, hidden] to [batch, hidden] over the non-padding tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    last = attention_mask.sum(1).clamp(min=1) - 1  # right padding: last real token
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def build_classifier(backbone: nn.Module, *, num_labels: int, spec: ModelSpec) -> PooledClassifier:
    """Wrap a loaded backbone with LoRA adapters and a trainable head.

    LoRA is injected after the backbone is on its final device (opacus issue #820: peft
    and Opacus can otherwise silently train nothing); build the optimizer afterwards.
    """
    if not spec.backbone_dropout:
        disable_dropout(backbone)
    if spec.method == "lora":
        backbone = apply_lora(backbone, spec.lora)
    elif spec.method in ("bitfit", "head"):
        backbone.requires_grad_(False)
        if spec.method == "bitfit":
            train_biases(backbone, top_layers=spec.lora.top_layers)
    else:
        raise ValueError(f"method must be lora, bitfit or head for a transformer classifier, got {spec.method!r}")
    model = PooledClassifier(backbone, num_labels, pooling=spec.pooling, head_bias_init=spec.head_bias_init)
    model.train()  # from_pretrained returns eval mode; Opacus records nothing in eval mode
    return model


def train_biases(backbone: nn.Module, *, top_layers: int | None) -> None:
    """BitFit (Ben Zaken et al. 2022; DP-BiTFiT, Bu et al. 2022): make the bias terms trainable,
    all of them, or those of the top `top_layers` numbered layers only."""
    numbered = [(int(m.group(1)), name) for name, _ in backbone.named_parameters()
                if (m := re.search(r"\.(\d+)\.", name))]
    last = max((i for i, _ in numbered), default=-1)
    chosen = ({name for i, name in numbered if i > last - top_layers} if top_layers is not None
              else {name for name, _ in backbone.named_parameters()})
    for name, param in backbone.named_parameters():
        param.requires_grad = name in chosen and name.endswith(".bias")


def disable_dropout(module: nn.Module) -> None:
    """Set every dropout probability in `module` (layers and config fields) to zero."""
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = 0.0
        for attr in ("dropout", "attention_dropout", "dropout_prob"):
            if isinstance(getattr(sub, attr, None), float):
                setattr(sub, attr, 0.0)  # attention implementations that keep a float probability
    config = getattr(module, "config", None)
    for key in list(vars(config)) if config is not None else []:
        if "dropout" in key and isinstance(getattr(config, key), float):
            setattr(config, key, 0.0)


def load_classifier(spec: ModelSpec, *, num_labels: int, device: str = "cpu"):
    """Load (classifier, tokenizer) for `spec` from its local folder, offline."""
    folder = resolve_model_path(spec.name_or_path)
    tokenizer = load_tokenizer(folder)
    return _wrap(load_backbone(folder).to(device), tokenizer, spec=spec, num_labels=num_labels, device=device)


def classifier_from_config(config, *, spec: ModelSpec, num_labels: int, device: str = "cpu"):
    """(classifier, tokenizer) around a randomly initialised backbone built from a transformers
    `config`, with the tokenizer of `spec.name_or_path` (a folder, or the embedded MiniLM).

    A model of any size with nothing downloaded: for cost benchmarks (step time, memory),
    since its random weights make its accuracy meaningless. Seed torch first for the same weights.
    """
    from transformers import AutoModel

    from dpsweep.errors import ModelError

    tokenizer = load_tokenizer(resolve_model_path(spec.name_or_path))
    if config.vocab_size < len(tokenizer):
        raise ModelError(f"config vocab_size = {config.vocab_size} is less than the tokenizer's {len(tokenizer)} "
                         "tokens; set vocab_size to at least the tokenizer's size")
    with torch.device(device):  # initialise on the device: a large model's init is much faster there
        backbone = AutoModel.from_config(config)
    return _wrap(backbone, tokenizer, spec=spec, num_labels=num_labels, device=device)


def _wrap(backbone: nn.Module, tokenizer, *, spec: ModelSpec, num_labels: int, device: str):
    if getattr(backbone.config, "pad_token_id", None) is None:
        backbone.config.pad_token_id = tokenizer.pad_token_id
    return build_classifier(backbone, num_labels=num_labels, spec=spec).to(device), tokenizer


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters DP-SGD updates: LoRA adapters and the head."""
    return [p for p in model.parameters() if p.requires_grad]
