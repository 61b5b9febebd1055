"""One trial, Ray-free: DP-LoRA training loop (Opacus), evaluation metrics.

The names below are imported on first use: ``import dpsweep.train.plan`` (or reading
``dpsweep.train.TrialConfig``) does not pull torch; ``run_trial`` and ``TrialResult`` do.
"""

from __future__ import annotations

from dpsweep import _lazy

_EXPORTS = {
    "dpsweep.settings": ("TrialConfig",),
    "loop": ("run_trial",),
    "record": ("TrialResult",),
    "metrics": ("Metrics", "evaluate", "floors", "tune_thresholds"),
    "plan": ("StepPlan", "plan_steps", "sample_rate_for"),
}
__getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS)
__all__ = _lazy.export_names(_EXPORTS)
