"""`make gpu-check` / `dpsweep bench gpu`: one quickstart trial on CUDA, its model, its step cost.

On the GPU it (1) trains a DP (ε = 8) and a non-private quickstart trial with
`--device cuda`, saving the DP model; (2) loads that model and predicts the test split
on the GPU, checking the metrics equal the trial's own; (3) measures the DP / non-private
step-time ratio side by side (Opacus hooks, per-layer clipping) with peak GPU memory.
Refuses with one line where no GPU is visible.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

QUICKSTART = dict(dataset_format="mimic-cxr", max_length=64, lora_layers=1, rank=8, lr=5e-3, head_lr=0.3,
                  batch_size=256, physical_batch_size=64, max_epochs=4.0, seed=0)


def gpu_check(*, data: Path, n: int = 1500, device: str = "cuda") -> dict:
    """The three checks above; returns their figures (raises UserInputError without a GPU)."""
    from dpsweep.data import write_synthetic
    from dpsweep.devices import resolve_device
    from dpsweep.settings import TrialConfig
    from dpsweep.train import run_trial

    device = resolve_device(device)
    if not device.startswith("cuda"):
        from dpsweep.errors import UserInputError

        raise UserInputError("bench gpu needs a CUDA GPU; pass --device cuda on a GPU machine")
    if not (data / "files").exists():
        write_synthetic("mimic-cxr", data, n=n, seed=0)
    base = TrialConfig(data_path=str(data), **QUICKSTART)
    report: dict = {"device": device, "gpu": _gpu_name(device)}
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / "model"
        trials = {}
        for name, epsilon in (("dp", 8.0), ("non_private", math.inf)):
            t0 = time.perf_counter()
            result = run_trial(base.override(epsilon=epsilon), device=device,
                               output_dir=str(model_dir) if name == "dp" else None)
            trials[name] = result
            report[f"{name}_trial"] = {"weighted_f1": result.val.weighted_f1, "epsilon": result.ledger.epsilon,
                                       "steps": result.ledger.steps, "step_seconds": result.step_seconds,
                                       "wall_seconds": time.perf_counter() - t0}
        report["trial_step_ratio_dp_over_non_private"] = (trials["dp"].step_seconds
                                                          / trials["non_private"].step_seconds)
        report["predict"] = _predict_check(model_dir, data, trials["dp"], device)
    from dpsweep.bench.step import bench_step

    report["step"] = bench_step(batch_size=32, length=128, rounds=3, device=device)
    return report


def _predict_check(model_dir: Path, data: Path, trial, device: str) -> dict:
    from dpsweep.export.predict import predict_to_file

    out = model_dir.parent / "test.parquet"
    t0 = time.perf_counter()
    summary = predict_to_file(model_dir=model_dir, out=out, dataset_format="mimic-cxr", data_path=data,
                              split="test", threshold="0.5", device=device)
    return {"weighted_f1": summary["weighted_f1"], "trial_test_weighted_f1": trial.test.weighted_f1,
            "max_abs_difference": abs(summary["weighted_f1"] - trial.test.weighted_f1),
            "reports": summary["n_reports"], "seconds": time.perf_counter() - t0}


def _gpu_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(torch.device(device))
