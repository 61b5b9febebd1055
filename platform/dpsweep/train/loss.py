"""Multi-label loss with a per-sample form (for ghost clipping) and masked labels."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IGNORE = -1.0  # target value of a label that is unknown (uncertain, policy "ignore")


class MultiLabelBCE(nn.Module):
    """Binary cross-entropy summed over labels, then reduced over the batch.

    Summing (not averaging) over labels keeps each example's gradient at full size:
    averaging over 14-18 labels shrinks it so far that the clipping norm never binds and
    DP noise dominates. `reduction="none"` returns one loss per example, the form Opacus'
    ghost clipping asks for.
    """

    def __init__(self, reduction: str = "mean", *, pos_weight: float = 1.0):
        super().__init__()
        self.reduction = reduction
        self.pos_weight = float(pos_weight)  # a fixed constant (settings.pos_weight), never fitted

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = (targets != IGNORE).to(logits.dtype)
        weight = None if self.pos_weight == 1.0 else torch.full_like(logits[:1], self.pos_weight)
        per_label = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), reduction="none",
                                                       pos_weight=weight)
        per_sample = (per_label * known).sum(dim=1)
        if self.reduction == "none":
            return per_sample
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample.mean() if per_sample.numel() else per_sample.sum()
