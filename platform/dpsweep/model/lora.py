"""LoRA adapters (peft) on the attention projections, chosen per architecture."""

from __future__ import annotations

from dataclasses import dataclass

from dpsweep.errors import ConfigError

# peft's own table covers most encoders and decoders; these fill its gaps.
_EXTRA_TARGETS: dict[str, tuple[str, ...]] = {
    "albert": ("query", "value"),
    "distilbert": ("q_lin", "v_lin"),
    "modernbert": ("Wqkv",),
}


@dataclass(frozen=True)
class LoraSettings:
    """Rank, scaling and placement of the LoRA adapters."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] | None = None  # None: chosen from the architecture
    # Adapt only the top N transformer layers (None: all). Layers below the first adapter
    # need no backward pass at all, and fewer adapted weights means less DP noise.
    top_layers: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"LoRA rank must be an integer >= 1, got {self.rank!r}; pass --rank 8 for example")
        if not self.alpha > 0:
            raise ConfigError(f"LoRA alpha must be > 0, got {self.alpha!r}; the usual choice is 2 x rank")
        if self.top_layers is not None and self.top_layers < 1:
            raise ConfigError(f"lora_layers must be >= 1 (or unset for all layers), got {self.top_layers!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")


def lora_targets_for(model_type: str) -> tuple[str, ...]:
    """The module names LoRA wraps for an architecture (`config.model_type`)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as table

    if model_type in table:
        return tuple(table[model_type])
    if model_type in _EXTRA_TARGETS:
        return _EXTRA_TARGETS[model_type]
    raise ConfigError(
        f"no default LoRA target modules for model type {model_type!r}; set lora_targets "
        "in the config to the attention projection names (e.g. [q_proj, v_proj])"
    )


def apply_lora(backbone, settings: LoraSettings):
    """Inject LoRA adapters into `backbone` in place; freeze everything but the adapters."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = settings.targets or lora_targets_for(backbone.config.model_type)
    if settings.top_layers is not None:
        targets = _in_top_layers(backbone, targets, settings.top_layers)
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        bias="none",
    )
    try:
        backbone = inject_adapter_in_model(config, backbone)
    except ValueError as exc:
        raise ConfigError(
            f"LoRA targets {list(targets)} not found in model type {backbone.config.model_type!r}; "
            "set lora_targets to module names that exist in the model"
        ) from exc
    for name, param in backbone.named_parameters():
        param.requires_grad = "lora_" in name
    return backbone


def _in_top_layers(backbone, targets: tuple[str, ...], top: int) -> tuple[str, ...]:
    """Full names of the target modules that sit in the top `top` numbered layers."""
    import re

    found: list[tuple[int, str]] = []
    for name, _ in backbone.named_modules():
        if any(name == t or name.endswith("." + t) for t in targets):
            match = re.search(r"\.(\d+)\.", name)
            if match:
                found.append((int(match.group(1)), name))
    if not found:
        raise ConfigError(f"lora_layers is set but no target module {list(targets)} sits in a numbered layer; "
                          "unset lora_layers")
    last = max(i for i, _ in found)
    return tuple(name for i, name in found if i > last - top)
