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

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"LoRA rank must be an integer >= 1, got {self.rank!r}; pass --rank 8 for example")
        if not self.alpha > 0:
            raise ConfigError(f"LoRA alpha must be > 0, got {self.alpha!r}; the usual choice is 2 x rank")
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
