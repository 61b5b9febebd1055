"""The trial of `dpsweep.train`, trained on Ray Train workers with Opacus distributed DP.

- ``run_trial_on_workers``: same arguments and TrialResult as ``run_trial``, plus the
  worker group (number, CPUs/GPUs each), checkpoint storage and failure budget.
- ``run_on_workers``: the same, also returning how each rank ended (``RankSummary``).

Ray is imported only when a trial runs.
"""

from __future__ import annotations

from dpsweep.distributed.launch import WorkersRun, run_on_workers, run_trial_on_workers
from dpsweep.distributed.state import RankSummary

__all__ = ["RankSummary", "WorkersRun", "run_on_workers", "run_trial_on_workers"]
