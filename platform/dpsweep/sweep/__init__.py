"""Sweeps: search-space files -> a typed spec -> an Optuna-driven Ray Tune search per ε target.

`spec` and `plan` import neither Ray nor torch (a dry run needs neither); `runner`,
`trainable` and `callbacks` bring in Ray when a sweep actually runs. The names below are
imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from dpsweep import _lazy

_EXPORTS = {
    "plan": ("SweepPlan", "TargetPlan", "plan_sweep"),
    "spec": ("Param", "Resources", "SweepSpec", "load_spec", "spec_from_mapping"),
}
__getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS)
__all__ = _lazy.export_names(_EXPORTS)
