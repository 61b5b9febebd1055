"""Cache the frozen lower layers' output once per trial, so each step runs only the top.

With LoRA on the top N layers only (`lora_layers`) and dropout off, the layers below the
first adapted one are a fixed function of the tokens: their output for a training report
never changes. Computing it once and reusing it every step makes a DP step several times
cheaper on CPU (MiniLM with LoRA on its top layer: 5 of 6 layers skipped) while giving
the same logits and the same per-sample gradients, so privacy accounting is untouched.

Reports whose tokens are not cached (validation, test) run through every layer as usual.
"""

from __future__ import annotations

import re

import torch
from torch import nn

DEFAULT_MAX_CACHE_BYTES = 2 * 1024**3


class _Prefix(nn.Module):
    """Stands in for frozen layers 0..k-1: returns the cached states, or runs the layers."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.cached: torch.Tensor | None = None

    def forward(self, hidden_states, *args, **kwargs):
        if self.cached is not None:
            return self.cached
        for layer in self.layers:
            hidden_states = layer(hidden_states, *args, **kwargs)
        return hidden_states


class _Skip(nn.Module):
    """Takes the place of layers 1..k-1, whose work `_Prefix` already did."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class _Stop(Exception):
    pass


class PrefixCache:
    """Frozen-prefix states of a fixed set of token sequences, keyed by their token ids."""

    def __init__(self, prefix: _Prefix, first_adapted: int) -> None:
        self.prefix, self.first_adapted = prefix, first_adapted
        self.states: dict[bytes, torch.Tensor] = {}

    def key(self, ids: torch.Tensor) -> bytes:
        """The states' key: the depth they were taken at, then the token ids (a sweep shares one
        dict between trials; states of another depth never match)."""
        return self.first_adapted.to_bytes(2, "little") + ids.to(torch.int64).cpu().numpy().tobytes()

    def batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Padded [batch, tokens, hidden] states when every row is cached, else None."""
        lengths = attention_mask.sum(1).tolist()
        rows = []
        for ids, n in zip(input_ids, lengths, strict=True):
            state = self.states.get(self.key(ids[: int(n)]))
            if state is None:
                return None
            rows.append(state)
        out = rows[0].new_zeros((len(rows), input_ids.shape[1], rows[0].shape[-1]))
        for i, state in enumerate(rows):
            out[i, : state.shape[0]] = state
        return out.to(input_ids.device)


def first_adapted_layer(model: nn.Module) -> int | None:
    """Index of the lowest numbered layer holding a trainable (LoRA) parameter."""
    found = [int(m.group(1)) for name, p in model.named_parameters()
             if p.requires_grad and (m := re.search(r"\.(\d+)\.", name))]
    return min(found) if found else None


def layer_list(backbone: nn.Module) -> nn.ModuleList | None:
    """The ModuleList of transformer blocks (length = num_hidden_layers), if there is one."""
    n = getattr(backbone.config, "num_hidden_layers", None)
    for _, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    return None


def install_prefix(backbone: nn.Module, first_adapted: int) -> _Prefix | None:
    """Replace layers 0..first_adapted-1 by one `_Prefix` (and `_Skip`s); None if impossible."""
    layers = layer_list(backbone)
    if layers is None or first_adapted < 1 or any(isinstance(m, _Prefix) for m in layers):
        return None
    prefix = _Prefix([layers[i] for i in range(first_adapted)])
    layers[0] = prefix
    for i in range(1, first_adapted):
        layers[i] = _Skip()
    return prefix


@torch.no_grad()
def fill_cache(cache: PrefixCache, run_backbone, sequences: list[list[int]], *, pad_id: int,
               batch_size: int = 64, device: str | torch.device = "cpu") -> None:
    """Run the backbone up to the prefix for every sequence (sorted by length), keep the states."""

    def grab(module, args, output):
        raise _Stop(output)

    handle = cache.prefix.register_forward_hook(grab)
    try:
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for start in range(0, len(order), batch_size):
            chunk = [sequences[i] for i in order[start : start + batch_size]]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, seq in enumerate(chunk):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            try:
                run_backbone(ids.to(device), mask.to(device))
            except _Stop as stop:
                states = stop.args[0]
            else:  # pragma: no cover - the hook always fires
                raise AssertionError("prefix hook did not fire")
            for row, seq in enumerate(chunk):
                cache.states[cache.key(torch.tensor(seq))] = states[row, : len(seq)].detach().float().cpu().clone()
    finally:
        handle.remove()


def estimated_bytes(sequences: list[list[int]], hidden_size: int) -> int:
    return sum(len(s) for s in sequences) * hidden_size * 4
