"""One trial, Ray-free: DP-LoRA training loop (Opacus), evaluation metrics."""

from __future__ import annotations

from dpsweep.settings import TrialConfig
from dpsweep.train.loop import TrialResult, run_trial
from dpsweep.train.metrics import Metrics, evaluate, floors, tune_thresholds
from dpsweep.train.plan import StepPlan, plan_steps, sample_rate_for

__all__ = ["Metrics", "StepPlan", "TrialConfig", "TrialResult", "evaluate", "floors", "plan_steps",
           "run_trial", "sample_rate_for", "tune_thresholds"]
