"""Cache the frozen lower layers' output once per trial, so each step runs only the top.

With LoRA on the top N layers only (`lora_layers`) and dropout off, the layers below the
first adapted one are a fixed function of the tokens: their output for a training report
never changes. Computing it once and reusing it every step makes a DP step several times
cheaper on CPU (MiniLM with LoRA on its top layer: 5 of 6 layers skipped) while giving
the same logits and per-sample gradients up to the rounding of the states to fp16 (about
1e-3 relative; tests/model/test_prefix_cache.py states the tolerance). Privacy accounting is
untouched: the cached states are a fixed function of each report's own tokens, and clipping
and noise act on the gradients as before.

Reports whose tokens are not cached (validation, test) run through every layer as usual.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

# States are kept in half precision (fp16: 2 bytes a number). Up to MEMORY_BUDGET_BYTES they
# live in memory (a sweep puts them in Ray's object store); above it they go to a memory-mapped
# file when the caller gives a folder (a sweep: its run folder), else the cache is refused.
# At full MIMIC-CXR size (205k reports x ~57 tokens x 384) they take about 9 GB.
MEMORY_BUDGET_BYTES = 2 * 1024**3
DEFAULT_MAX_CACHE_BYTES = MEMORY_BUDGET_BYTES  # kept for callers that name the old constant
STATE_DTYPE = np.float16


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


def sequence_key(ids) -> bytes:
    """The lookup key of one token sequence (int32 bytes; same for a list, array or tensor)."""
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    return np.asarray(ids, dtype=np.int32).tobytes()


class PrefixStates:
    """Frozen-prefix states of a fixed list of sequences: one fp16 [tokens, hidden] array.

    Row i's states are `data[offsets[i]:offsets[i + 1]]`, the output of layers 0..depth-1.
    `data` is in memory or a read-only memory-mapped file (`path`); pickling a mapped store
    sends only its path, so every trial on the node maps the same file instead of a copy.
    """

    def __init__(self, sequences: Sequence, data: np.ndarray, offsets: np.ndarray, *, depth: int,
                 path: str | None = None):
        self.sequences, self.data, self.offsets, self.depth, self.path = sequences, data, offsets, depth, path
        self._index: dict[bytes, int] | None = None

    @classmethod
    def allocate(cls, sequences: Sequence, hidden_size: int, *, depth: int,
                 folder: str | Path | None = None) -> PrefixStates:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        shape = (int(offsets[-1]), hidden_size)
        if folder is None:
            return cls(sequences, np.zeros(shape, dtype=STATE_DTYPE), offsets, depth=depth)
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = str(Path(folder) / f"prefix-states-{uuid.uuid4().hex[:12]}.f16")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)  # derived from reports: owner only
        os.close(fd)
        data = np.memmap(path, dtype=STATE_DTYPE, mode="w+", shape=shape)
        return cls(sequences, data, offsets, depth=depth, path=path)

    @staticmethod
    def nbytes_for(sequences: Sequence, hidden_size: int) -> int:
        return sum(len(s) for s in sequences) * hidden_size * np.dtype(STATE_DTYPE).itemsize

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def index(self) -> dict[bytes, int]:
        if self._index is None:
            self._index = {sequence_key(s): i for i, s in enumerate(self.sequences)}
        return self._index

    def __contains__(self, key: bytes) -> bool:
        return key in self.index

    def get(self, key: bytes) -> torch.Tensor | None:
        """Row states as fp32 (the dtype the layers above run in), or None when not held."""
        i = self.index.get(key)
        if i is None:
            return None
        return torch.from_numpy(np.asarray(self.data[self.offsets[i] : self.offsets[i + 1]], dtype=np.float32))

    def put(self, i: int, states: torch.Tensor) -> None:
        self.data[self.offsets[i] : self.offsets[i + 1]] = states.detach().to("cpu", torch.float16).numpy()

    def finish(self) -> None:
        """Make a memory-mapped store read-only (written once, then only read)."""
        if self.path is not None:
            self.data.flush()
            self.data = np.memmap(self.path, dtype=STATE_DTYPE, mode="r", shape=self.data.shape)

    def __getstate__(self) -> dict:
        state = {**self.__dict__, "_index": None}
        if self.path is not None:
            state["data"] = self.data.shape  # the file, not its content, crosses processes
        return state

    def __setstate__(self, state: dict) -> None:
        if state["path"] is not None:
            state["data"] = np.memmap(state["path"], dtype=STATE_DTYPE, mode="r", shape=tuple(state["data"]))
        self.__dict__.update(state)


class PrefixCache:
    """Frozen-prefix states for the model's forward pass, looked up by token ids."""

    def __init__(self, prefix: _Prefix, first_adapted: int) -> None:
        self.prefix, self.first_adapted = prefix, first_adapted
        self.stores: list[PrefixStates] = []

    @property
    def states(self) -> PrefixStates | None:
        """The store holding every cached sequence when there is one (what a sweep shares)."""
        return self.stores[0] if len(self.stores) == 1 else None

    def __len__(self) -> int:
        return sum(len(s) for s in self.stores)

    def get(self, key: bytes) -> torch.Tensor | None:
        for store in self.stores:
            state = store.get(key)
            if state is not None:
                return state
        return None

    def batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Padded [batch, tokens, hidden] states when every row is cached, else None."""
        lengths = attention_mask.sum(1).tolist()
        rows = []
        for ids, n in zip(input_ids, lengths, strict=True):
            state = self.get(sequence_key(ids[: int(n)]))
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
def fill_cache(cache: PrefixCache, run_backbone, store: PrefixStates, *, pad_id: int,
               batch_size: int = 64, device: str | torch.device = "cpu") -> None:
    """Run the backbone up to the prefix for every sequence of `store` (sorted by length), keep the states."""

    def grab(module, args, output):
        raise _Stop(output)

    sequences = store.sequences
    handle = cache.prefix.register_forward_hook(grab)
    try:
        order = np.argsort(np.diff(store.offsets), kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                seq = torch.as_tensor(np.asarray(sequences[i], dtype=np.int64))
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            try:
                run_backbone(ids.to(device), mask.to(device))
            except _Stop as stop:
                states = stop.args[0]
            else:  # pragma: no cover - the hook always fires
                raise AssertionError("prefix hook did not fire")
            for row, i in enumerate(chunk):
                store.put(int(i), states[row, : len(sequences[i])])
    finally:
        handle.remove()
    store.finish()


def estimated_bytes(sequences: Sequence, hidden_size: int) -> int:
    """Bytes the fp16 states of `sequences` take."""
    return PrefixStates.nbytes_for(sequences, hidden_size)
