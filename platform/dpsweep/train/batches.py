"""Tokenised splits, padding collate and evaluation batches.

Texts are tokenised once (per sweep when a sweep hands its trials a `TokenizedCorpus`,
else per trial) into flat arrays (`dpsweep.train.tokens`); batches are padded to their
longest member, not to max_length, which saves much of the compute on short reports.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from dpsweep.train.loss import IGNORE
from dpsweep.train.tokens import TokenArrays, TokenizedSplit, check_tokens_fit, tokenize_texts


class EncodedSplit(Dataset):
    """Token ids and targets of one split; targets hold IGNORE where a label is unknown.

    `input_ids`: flat `TokenArrays` (lists of lists are packed into one). `groups`: the
    patient (or study) id or code of each report, for patient-level privacy.
    """

    def __init__(self, input_ids: TokenArrays | list[list[int]], targets: torch.Tensor, pad_id: int,
                 groups: list[str] | np.ndarray | None = None):
        self.input_ids = input_ids if isinstance(input_ids, TokenArrays) else TokenArrays.from_lists(input_ids)
        self.targets = targets
        self.pad_id = pad_id
        self.groups = groups

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.input_ids[i].astype(np.int64)), self.targets[i]

    def lengths(self) -> list[int]:
        """Tokens of each report, for length-sorted physical batches."""
        return self.input_ids.lengths().tolist()


def encode(split, tokenizer, *, max_length_tokens: int) -> EncodedSplit:
    """Tokenise a data split (truncating to max_length_tokens).

    A `TokenizedSplit` (tokenised once for a whole sweep) is used as it is, without a copy.
    """
    if isinstance(split, TokenizedSplit):
        check_tokens_fit(split, tokenizer, max_length_tokens=max_length_tokens)
        ids = split.tokens
    else:
        ids = tokenize_texts(split.texts, tokenizer, max_length_tokens=max_length_tokens)
    targets = torch.tensor(np.where(split.mask, split.labels, IGNORE), dtype=torch.float32)
    groups = getattr(split, "groups", None)  # texts to predict carry no patients
    return EncodedSplit(ids, targets, tokenizer.pad_token_id, groups=None if groups is None else list(groups))


class PadCollate:
    """Pad a list of (ids, target) to the batch's longest sequence (right padding)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items):
        width = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(items), width), dtype=torch.long)
        for row, (ids, _) in enumerate(items):
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        targets = torch.stack([t for _, t in items])
        return input_ids, attention, targets


class EmptySafeCollate(PadCollate):
    """PadCollate that turns an empty batch into one placeholder row of zero loss.

    Poisson sampling can draw an empty batch; a transformer cannot run on zero rows. The
    placeholder is a single attended pad token with every label IGNORE, so the masked loss
    is exactly 0 and so is its gradient: the step adds noise only, as an empty batch's
    would. It carries no data.
    """

    def __init__(self, pad_id: int, *, num_labels: int):
        super().__init__(pad_id)
        self.num_labels = num_labels

    def placeholder(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.full((1, 1), self.pad_id, dtype=torch.long), torch.ones((1, 1), dtype=torch.long),
                torch.full((1, self.num_labels), IGNORE, dtype=torch.float32))

    def __call__(self, items):
        return self.placeholder() if not items else super().__call__(items)


class PatientSplit(Dataset):
    """A training split whose items are patients: each item is that patient's reports.

    Patient-level DP samples, clips and counts patients, so one item must be one patient.
    At most `max_reports` reports per patient are kept (in data order); the rest are not
    trained on, which bounds the memory of one patient's forward pass.
    """

    def __init__(self, reports: EncodedSplit, *, max_reports: int):
        if reports.groups is None:
            raise ValueError("patient-level training needs the reports' patient ids")
        members: dict[str, list[int]] = {}
        for i, group in enumerate(reports.groups):
            members.setdefault(group, []).append(i)
        self.reports = reports
        self.members = [rows[:max_reports] for rows in members.values()]
        self.pad_id = reports.pad_id
        self.targets = reports.targets  # [reports, labels]: the label count is read from here

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int):
        return [self.reports[r] for r in self.members[i]]

    def lengths(self) -> list[int]:
        """Tokens per patient (all their kept reports), for length-sorted physical batches."""
        lengths = self.reports.input_ids.lengths()
        return [int(lengths[rows].sum()) for rows in self.members]


class PatientCollate(EmptySafeCollate):
    """Flattens a batch of patients into report rows, plus each row's patient (0..b-1).

    Returns (input_ids, attention, targets, owner); an empty batch becomes the placeholder
    row owned by one empty "patient" (zero loss, zero gradient).
    """

    def __call__(self, patients):
        rows = [report for reports in patients for report in reports]
        if not rows:
            return (*self.placeholder(), torch.zeros(1, dtype=torch.long))
        owner = torch.tensor([p for p, reports in enumerate(patients) for _ in reports], dtype=torch.long)
        return (*PadCollate.__call__(self, rows), owner)


def length_sorted_chunks(indices, lengths: list[int], max_batch_size: int) -> list[list[int]]:
    """Split one logical batch into physical chunks of similar length (less padding).

    Which examples form the logical batch is untouched (Poisson sampling decides that);
    only the order within it changes, which leaves the summed clipped gradient the same.
    """
    ordered = sorted((int(i) for i in indices), key=lambda i: lengths[i])
    n_chunks = max(1, -(-len(ordered) // max_batch_size))
    return [chunk.tolist() for chunk in np.array_split(np.asarray(ordered, dtype=np.int64), n_chunks)]


def length_sorted_memory_manager(data_loader, *, max_physical_batch_size: int, optimizer, lengths: list[int],
                                 collate_fn=None):
    """Opacus' BatchMemoryManager, with each logical batch's chunks sorted by length.

    `collate_fn` replaces the loader's (Opacus' own turns an empty batch into zero rows).
    """
    from opacus.utils.batch_memory_manager import BatchSplittingSampler
    from torch.utils.data import DataLoader

    class _SortedSplitter(BatchSplittingSampler):
        def __iter__(self):
            for batch_idxs in self.sampler:
                if len(batch_idxs) == 0:
                    self.optimizer.signal_skip_step(do_skip=False)
                    yield []
                    continue
                chunks = length_sorted_chunks(batch_idxs, lengths, self.max_batch_size)
                for chunk in chunks[:-1]:
                    self.optimizer.signal_skip_step(do_skip=True)
                    yield chunk
                self.optimizer.signal_skip_step(do_skip=False)
                yield chunks[-1]

    return DataLoader(dataset=data_loader.dataset, collate_fn=collate_fn or data_loader.collate_fn,
                      generator=data_loader.generator,
                      batch_sampler=_SortedSplitter(sampler=data_loader.batch_sampler,
                                                    max_batch_size=max_physical_batch_size,
                                                    optimizer=optimizer))


class _HostOutputs(torch.nn.Module):
    """Runs a model on its device for CPU inputs and hands its outputs back on the CPU."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids.to(self.device), attention_mask.to(self.device)).float().cpu()


def on_host(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """The model as `predict` wants it: CPU inputs in, CPU outputs out, wherever it runs."""
    return model if torch.device(device).type == "cpu" else _HostOutputs(model, device)


@torch.no_grad()
def predict(model: torch.nn.Module, data: EncodedSplit, *, batch_size: int,
            progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Sigmoid probabilities for every example, in the split's order.

    `progress(done, total)` is called after every batch (callers rate-limit what they print).
    """
    was_training = model.training
    model.eval()
    order = np.argsort(data.input_ids.lengths())  # similar lengths pad less
    collate = PadCollate(data.pad_id)
    out = np.zeros((len(data), data.targets.shape[1]), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        input_ids, attention, _ = collate([data[i] for i in idx])
        out[idx] = torch.sigmoid(model(input_ids, attention)).numpy()
        if progress is not None:
            progress(start + len(idx), len(order))
    model.train(was_training)
    return out
