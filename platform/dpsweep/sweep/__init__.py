"""Sweeps: search-space files -> a typed spec -> an Optuna-driven Ray Tune search per ε target.

`spec` and `plan` import neither Ray nor torch (a dry run needs neither); `runner`,
`trainable` and `callbacks` bring in Ray when a sweep actually runs.
"""

from dpsweep.sweep.plan import SweepPlan, TargetPlan, plan_sweep
from dpsweep.sweep.spec import Param, Resources, SweepSpec, load_spec, spec_from_mapping

__all__ = ["Param", "Resources", "SweepPlan", "SweepSpec", "TargetPlan", "load_spec", "plan_sweep",
           "spec_from_mapping"]
