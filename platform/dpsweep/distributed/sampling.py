"""Per-rank Poisson sampling that keeps the ranks of a DP trial in step.

Opacus' DistributedUniformWithReplacementSampler skips a rank's empty Poisson batch, so
that rank would reach the next gradient all-reduce one step ahead of the others (and
hang or mix steps). This variant yields every batch, empty ones too, so all ranks take
exactly the same number of steps. Transformers cannot run a forward pass on zero rows,
so the trainer's empty-safe collate (dpsweep.train.batches.EmptySafeCollate) turns an
empty local batch into one placeholder row of zero loss and zero gradient.
"""

from __future__ import annotations

import torch
from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler
from torch.utils.data import DataLoader

from dpsweep.errors import PrivacyGuardError
from dpsweep.train.batches import EncodedSplit


class LockstepPoissonSampler(DistributedUniformWithReplacementSampler):
    """Opacus' per-rank Poisson sampler, yielding empty local batches instead of skipping them."""

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.shuffle_seed + self.epoch)
            indices = torch.randperm(self.total_size, generator=g)
        else:
            indices = torch.arange(self.total_size)
        indices = indices[self.rank : self.total_size : self.num_replicas]  # this rank's share
        for _ in range(self.num_batches):
            mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
            yield indices[mask.nonzero(as_tuple=False).reshape(-1)].tolist()


def lockstep_loader(dp_loader: DataLoader) -> DataLoader:
    """Opacus' distributed Poisson loader with its sampler swapped for LockstepPoissonSampler.

    Same q, same per-rank share of the data, same sampling generator: only empty batches
    are kept (the trainer's empty-safe collate turns them into a zero-loss placeholder).
    """
    sampler = dp_loader.batch_sampler
    if not isinstance(sampler, DistributedUniformWithReplacementSampler):
        raise PrivacyGuardError(f"expected Opacus' distributed Poisson sampler, got {type(sampler).__name__}; "
                                "wrap the model in DPDDP before make_private")
    dataset: EncodedSplit = dp_loader.dataset
    lockstep = LockstepPoissonSampler(total_size=sampler.total_size, sample_rate=sampler.sample_rate,
                                      shuffle=sampler.shuffle, shuffle_seed=sampler.shuffle_seed,
                                      generator=sampler.generator)
    # A DataLoader draws a seed from its generator at every pass; a generator of its own keeps
    # those draws out of the sampling stream, so a pass begun after a resume samples exactly
    # as the uninterrupted run would have.
    return DataLoader(dataset, batch_sampler=lockstep, generator=torch.Generator().manual_seed(0),
                      collate_fn=dp_loader.collate_fn)
