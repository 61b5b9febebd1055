"""Worker failures on purpose, to test that a trial survives them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FailOnce:
    """A step hook that kills rank `rank` at step `at_step`, once: the marker file remembers.

    Pass it as `run_on_workers(..., step_hook=FailOnce(...))`; the marker must be on a
    path every worker sees (same machine or shared storage). Before exiting it waits
    until Ray Train has committed every checkpoint reported so far: a report is taken
    in asynchronously, and a failure right after one could otherwise resume from the one
    before (still correct, but not the step a test expects).
    """

    rank: int
    at_step: int
    marker: str

    def __call__(self, *, rank: int, steps: int) -> None:
        if rank != self.rank or steps != self.at_step or Path(self.marker).exists():
            return
        import ray.train
        from ray.train import CheckpointConsistencyMode

        ray.train.get_all_reported_checkpoints(consistency_mode=CheckpointConsistencyMode.COMMITTED)
        Path(self.marker).write_text(f"rank {rank} exited at step {steps}\n")
        os._exit(1)
