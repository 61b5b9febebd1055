"""dpsweep: differentially private LoRA fine-tuning of report classifiers, swept on Ray."""

from __future__ import annotations

__version__ = "0.1.0"
