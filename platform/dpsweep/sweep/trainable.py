"""The Ray Tune function trial: sampled hyperparameters -> one trial -> one report.

With one worker per trial the trial trains right here, inside the Tune trial process
(no ~30 s worker-group start); with more it fits a Ray Train TorchTrainer with Opacus'
distributed DP (`dpsweep.distributed`). Either way it reports once, at the end, the
validation metric Optuna maximises and the finished results-store row (as JSON), which
the driver writes; the trial itself never touches the store.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from typing import Any

from dpsweep.console import from_json_safe, json_safe
from dpsweep.settings import TrialConfig

METRIC = "weighted_f1"
# Where a trial's time went (TrialResult fields), reported for `dpsweep bench sweep`
TIMING_KEYS = ("load_seconds", "worker_start_seconds", "cache_seconds", "train_seconds", "eval_seconds")


def config_for(params: dict[str, Any], base: dict[str, Any]) -> TrialConfig:
    """Merge sampled parameters into the target's base config (coerced by the settings' types)."""
    return TrialConfig.from_mapping({**base, **params}, source="sweep trial")


def sweep_trial(params: dict[str, Any], *, base: dict[str, Any], sweep_id: str, trial_prefix: str,
                dataset_name: str | None, resources: dict[str, Any], runs_dir: str,
                prefix_ref=None, row_extra: dict[str, Any] | None = None,
                shared=None, warm_ref=None) -> None:
    """Tune function trainable (Ray 2.60 function API): train, evaluate, report once.

    `shared`: the sweep's tokenised corpus (`dpsweep.distributed.shared.SharedCorpus`); the
    trial reads it from Ray's object store instead of reading and tokenising the corpus.
    `prefix_ref`: the sweep's frozen-layer states (`SharedPrefix`, one store set per depth);
    the trial, or every rank of a multi-worker trial, takes those of its own depth.
    `warm_ref`: the sweep's public warm start (`SharedWarm`), computed once when no searched
    setting changes it; the trial (rank 0 of a multi-worker one) starts from it.
    """
    from ray import tune

    from dpsweep.console import quiet_libraries
    from dpsweep.train.record import result_row

    quiet_libraries()

    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    config = config_for(params, base)
    trial_id = f"{trial_prefix}-{tune.get_context().get_trial_id()}"
    workers = int(resources["workers_per_trial"])
    peak_gpu_mb = None  # one-worker GPU trials: the peak of this trial process (`dpsweep bench gpu`)
    model_dir = f"{runs_dir}/models/{trial_id}"  # every completed trial's model is kept
    if workers > 1:
        from dpsweep.distributed import run_trial_on_workers

        result = run_trial_on_workers(
            config, num_workers=workers, use_gpu=resources["gpus_per_worker"] > 0,
            cpus_per_worker=resources["cpus_per_worker"], gpus_per_worker=resources["gpus_per_worker"],
            storage_path=f"{runs_dir}/train", name=trial_id, output_dir=model_dir, shared=shared,
            prefix=prefix_ref, warm=warm_ref)
    else:
        import torch

        from dpsweep.train.loop import log_stderr, run_trial

        torch.set_num_threads(max(1, int(resources["cpus_per_worker"])))  # one thread per CPU Ray gave us
        # The GPU (or share of one) Ray assigned this trial is the one torch sees as cuda:0
        device = "cuda:0" if resources["gpus_per_worker"] > 0 else "cpu"
        # tune.with_parameters hands object-store refs over already resolved
        corpus = shared.get(config, log=log_stderr) if shared is not None else None
        if device != "cpu" and torch.cuda.is_initialized():  # before init it raises, and the peak is 0 anyway
            torch.cuda.reset_peak_memory_stats(device)  # a reused actor: this trial's peak only
        states = prefix_ref.states_for(config, log=log_stderr) if prefix_ref is not None else None
        warm = warm_ref.weights_for(config, log=log_stderr) if warm_ref is not None else None
        result = run_trial(config, corpus=corpus, prefix_states=states, device=device, output_dir=model_dir,
                           replace_output=True, warm_weights=warm)  # a trial id is new; a retried trial rewrites its own
        if device != "cpu":
            peak_gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20
    if dataset_name:
        result.dataset = dataset_name
    row = {**result_row(result, sweep_id=sweep_id, trial_id=trial_id, started_at=started_at), **(row_extra or {})}
    score = result.val.weighted_f1 if result.val is not None else 0.0  # infeasible: nothing learned
    timings = {key: float(getattr(result, key, 0.0) or 0.0) for key in TIMING_KEYS}
    tune.report({METRIC: score, "status": result.status, "row_json": json.dumps(json_safe(row), default=str),
                 "trial_seconds": time.perf_counter() - t0, "peak_gpu_mb": peak_gpu_mb, **timings,
                 "epsilon_spent": _finite_or_none(result.ledger.epsilon)})


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def row_from_json(text: str) -> dict[str, Any]:
    """Inverse of the report's row_json (`console.json_safe` + str datetimes): back to store types."""
    row = from_json_safe(json.loads(text))
    if isinstance(row.get("started_at"), str):
        row["started_at"] = datetime.fromisoformat(row["started_at"])
    return row
