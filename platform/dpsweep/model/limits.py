"""What a model folder allows, read from its config.json (no weights): checked before any data is read.

`dpsweep train` and `dpsweep sweep` (dry run included) call :func:`check_model_fits` first, so
`--max-length` above the model's token positions, `--lora-layers` above its layer count and
`lora_targets` naming modules it lacks are one line and exit 2, not a traceback after the
corpus was read and the weights loaded. Module names come from the model built on PyTorch's
meta device (shapes only, no memory, no weights: about 1.5 s for MiniLM), and only when
`lora_targets` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpsweep.errors import ConfigError, ModelError

# Architectures whose position ids start after the padding index (RoBERTa's scheme): a model
# with max_position_embeddings P reads at most P - pad_token_id - 1 tokens.
_PADDING_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer",
                                   "data2vec-text", "roberta-prelayernorm", "xmod", "ibert", "mpnet"})
# Module kinds peft's LoRA wraps (peft.tuners.lora.model: Linear, Embedding, Conv1d/2d/3d, GPT-2's Conv1D)
_LORA_KINDS = frozenset({"Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D"})


@dataclass(frozen=True)
class ModelShape:
    """The limits of one model, from its config: None where the config sets none."""

    model_type: str
    positions: int | None  # tokens one input may hold
    layers: int | None     # transformer layers (num_hidden_layers)


def model_config(folder: Path):
    """The model's transformers config (config.json only: no weights are read)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ModelError(f"model folder {folder}: config.json could not be read as a transformers config "
                         f"({first}); pass a folder saved with save_pretrained()") from None


def model_shape(config: Any) -> ModelShape:
    """Token positions and layer count of a transformers config."""
    model_type = str(getattr(config, "model_type", "") or "")
    positions = _positive_int(getattr(config, "max_position_embeddings", None))
    if positions is not None and model_type in _PADDING_OFFSET_TYPES:
        positions -= int(getattr(config, "pad_token_id", None) or 0) + 1
    return ModelShape(model_type, positions, _positive_int(getattr(config, "num_hidden_layers", None)))


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def module_kinds(config: Any) -> dict[str, str] | None:
    """Module name -> class name of the model built on the meta device; None if it cannot be built so."""
    import torch
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            model = AutoModel.from_config(config)
    except Exception:  # noqa: BLE001 - an exotic model: the check at load time still catches bad targets
        return None
    return {name: type(module).__name__ for name, module in model.named_modules() if name}


def check_model_fits(config: Any, *, fix: Callable[[str, str], str]) -> None:
    """Refuse settings the model cannot take, naming the model's limit.

    ``config`` is a TrialConfig; ``fix(setting, value)`` says how to set ``setting`` to
    ``value`` where the user gave it (a flag, or a key of a search-space file).
    """
    from dpsweep.model.loading import resolve_model_path

    folder = resolve_model_path(config.model)
    hf_config = model_config(folder)
    shape = model_shape(hf_config)
    what = f"model {config.model!r} ({shape.model_type or 'unknown type'})"
    if shape.positions is not None and config.max_length > shape.positions:
        raise ConfigError(f"max_length = {config.max_length} is more than {what} takes ({shape.positions} "
                          f"token positions); {fix('max_length', f'{shape.positions} or less')}")
    if config.lora_layers is not None and shape.layers is not None and config.lora_layers > shape.layers:
        raise ConfigError(f"lora_layers = {config.lora_layers} is more than {what} has ({shape.layers} layers); "
                          f"{fix('lora_layers', f'{shape.layers} or less (or leave it unset for all)')}")
    if config.lora_targets:
        kinds = module_kinds(hf_config)
        if kinds is not None:
            check_targets(config.lora_targets, kinds, what=what, fix=fix)


def check_targets(targets: tuple[str, ...], kinds: dict[str, str], *, what: str,
                  fix: Callable[[str, str], str]) -> None:
    """Each target must name (as peft matches: the full name or its last parts) a layer LoRA wraps."""
    wrappable = sorted({name.rsplit(".", 1)[-1] for name, kind in kinds.items() if kind in _LORA_KINDS
                        and not name.rsplit(".", 1)[-1].isdigit()})
    shown = ", ".join(wrappable[:20]) + (", ..." if len(wrappable) > 20 else "")
    hint = fix("lora_targets", f"names among: {shown}")
    for target in targets:
        matched = [name for name in kinds if name == target or name.endswith("." + target)]
        if not matched:
            raise ConfigError(f"lora_targets names {target!r}, but {what} has no module of that name; {hint}")
        odd = sorted({kinds[name] for name in matched if kinds[name] not in _LORA_KINDS})
        if odd:
            raise ConfigError(f"lora_targets names {target!r}, a {odd[0]} in {what}, which LoRA cannot wrap "
                              f"(it wraps Linear, Embedding and Conv layers); {hint}")
