"""`make gpu-check` / `dpsweep bench gpu`: what one GPU does for a quickstart trial, and what DP costs on it.

On the GPU it (1) trains a DP (ε = 8) and a non-private quickstart trial with
`--device cuda`, saving the DP model; (2) loads that model and predicts the test split
on the GPU, checking the metrics equal the trial's own; (3) measures the DP / non-private
step-time ratio of every Opacus mode (hooks per-layer and flat, ghost) for the embedded
MiniLM and a BERT-base-sized model built from config, with each mode's peak GPU memory
(bench.step); (4) runs the same small sweep with 1, 2 and 4 trials sharing the GPU
(gpus_per_worker 1/k) and reports trials per hour and each trial's peak GPU memory
(bench.concurrency). Refuses with one line where no GPU is visible.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

QUICKSTART = dict(dataset_format="mimic-cxr", max_length=64, lora_layers=1, rank=8, lr=5e-3, head_lr=0.3,
                  batch_size=256, physical_batch_size=64, max_epochs=4.0, seed=0)


def gpu_check(*, data: Path, n: int = 1500, device: str = "cuda", step_rounds: int = 2,
              levels: tuple[int, ...] = (1, 2, 4), trials_per_level: int = 8) -> dict:
    """The four checks above; returns their figures (raises UserInputError without a GPU)."""
    from dpsweep.data import write_synthetic
    from dpsweep.devices import resolve_device
    from dpsweep.errors import UserInputError
    from dpsweep.settings import TrialConfig
    from dpsweep.train import run_trial

    if not device.startswith("cuda"):
        raise UserInputError(f"bench gpu --device {device}: it measures a CUDA GPU; pass --device cuda "
                             "(or cuda:N) on a GPU machine")
    try:
        device = resolve_device(device)
    except UserInputError as exc:  # its hint (--device cpu) does not apply to a GPU check
        raise UserInputError(f"bench gpu: {str(exc).split(';')[0]}; run it on a machine with an NVIDIA GPU "
                             "and torch's CUDA build (README: Install)") from None
    if not (data / "files").exists():
        write_synthetic("mimic-cxr", data, n=n, seed=0)
    started = time.perf_counter()
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
    report["trials_and_predict_seconds"] = time.perf_counter() - started
    report["step"] = _step_benches(device, rounds=step_rounds)
    from dpsweep.bench.concurrency import bench_concurrency

    t0 = time.perf_counter()
    report["concurrency"] = bench_concurrency(data=data, levels=levels, trials=trials_per_level, device=device)
    report["concurrency"]["seconds"] = time.perf_counter() - t0
    report["seconds"] = time.perf_counter() - started
    return report


def _step_benches(device: str, *, rounds: int) -> dict:
    """DP / non-private step time and peak GPU memory, every mode, both models (batch 32 x 128 tokens)."""
    from dpsweep.bench.step import MODELS, MODES, bench_step

    out = {}
    for model in MODELS:
        t0 = time.perf_counter()
        out[model] = bench_step(batch_size=32, length=128, steps=10, warmup=3, rounds=rounds, modes=MODES,
                                device=device, model=model)
        out[model]["seconds"] = time.perf_counter() - t0
    return out


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


def summary_lines(report: dict) -> list[str]:
    """The report as a short table: trials, step ratios per model and mode, trials per hour per level."""
    lines = [f"GPU: {report['gpu']} ({report['device']})"]
    for name in ("dp", "non_private"):
        t = report[f"{name}_trial"]
        lines.append(f"  quickstart trial {name:<11}: weighted F1 {t['weighted_f1']:.3f}, {t['steps']} steps, "
                     f"{t['step_seconds'] * 1000:.1f} ms/step, {t['wall_seconds']:.1f} s")
    p = report["predict"]
    lines.append(f"  predict from the saved DP model: |F1 - trial's test F1| = {p['max_abs_difference']:.2g}")
    lines.append("step (batch 32 x 128 tokens): model, mode, ms/step, DP/non-private time, peak GPU MiB")
    for model, s in report["step"].items():
        for mode in (k for k in s if isinstance(s[k], dict)):
            ratio = s.get(f"{mode}_time_ratio", 1.0)
            lines.append(f"  {model:<9} {mode:<13} {s[mode]['step_s_median'] * 1000:8.1f} {ratio:6.2f}x "
                         f"{s[mode].get('peak_gpu_mb', float('nan')):9.0f}")
    c = report["concurrency"]
    lines.append(f"concurrent trials ({c['trials_per_level']} per level, each its 1/k of the GPU): "
                 "k, trials/hour (trial phase), (whole sweep), speedup, peak GPU MiB per trial, failed")
    for row in c["levels"]:
        peak = row["peak_gpu_mb_per_trial_max"]
        peak_text = "-" if peak is None else f"{peak:.0f}"
        lines.append(f"  k={row['trials_at_once']}  {row['trials_per_hour']:8.0f} "
                     f"{row['trials_per_hour_whole_sweep']:8.0f}  {row['speedup_over_first_level']:5.2f}x  "
                     f"{peak_text:>8}  {row['failed']}")
    return lines
