"""DP step vs non-private step: time and peak memory, side by side.

Each measurement runs in its own child process (so its peak RSS is its own), and the
modes alternate round by round so that drift in machine load hits both alike. A step is
forward + backward + optimizer step on a fixed batch of real-length token sequences;
the DP step adds Opacus' per-sample gradients, clipping and noise.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

# dp_hooks is what a trial runs by default (per-layer clipping of head and adapters);
# dp_hooks_flat and dp_ghost clip the whole gradient at once.
MODES = ("non_private", "dp_hooks", "dp_hooks_flat", "dp_ghost")


def _one(mode: str, *, batch_size: int, length: int, steps: int, warmup: int, device: str = "cpu") -> dict:
    import torch
    from opacus import PrivacyEngine

    from dpsweep.console import quiet_libraries
    from dpsweep.model import ModelSpec, load_classifier
    from dpsweep.settings import TrialConfig
    from dpsweep.train.loop import clipping_arguments, optimizer_and_schedule
    from dpsweep.train.loss import MultiLabelBCE

    quiet_libraries()
    torch.manual_seed(0)
    model, tokenizer = load_classifier(ModelSpec(), num_labels=14, device=device)
    input_ids = torch.randint(1000, tokenizer.vocab_size, (batch_size, length)).to(device)
    attention = torch.ones_like(input_ids)
    targets = (torch.rand(batch_size, 14) < 0.2).float().to(device)
    cuda = device.startswith("cuda")
    config = TrialConfig(clipping="per_layer" if mode == "dp_hooks" else "flat")
    optimizer, _ = optimizer_and_schedule(model, config, total_steps=steps + warmup)
    criterion = MultiLabelBCE("mean")
    if mode != "non_private":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(input_ids), batch_size=batch_size)
        out = PrivacyEngine(accountant="prv").make_private(
            module=model, optimizer=optimizer, data_loader=loader, criterion=criterion,
            noise_multiplier=1.0, poisson_sampling=False, **clipping_arguments(optimizer, config),
            grad_sample_mode="ghost" if mode == "dp_ghost" else "hooks")
        model, optimizer = out[0], out[1]
        if mode == "dp_ghost":
            criterion = out[2]
    rss_loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = criterion(model(input_ids, attention), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)  # GPU work is asynchronous: time it to the end
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"mode": mode, "step_s": statistics.median(times), "peak_rss_mb": peak_mb,
           "rss_after_load_mb": rss_loaded_mb}
    if cuda:
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def bench_step(*, batch_size: int = 32, length: int = 128, steps: int = 6, warmup: int = 2,
               rounds: int = 3, modes: tuple[str, ...] = ("non_private", "dp_hooks"), device: str = "cpu") -> dict:
    """Median step time and peak memory per mode, and the ratios DP / non-private (on `device`)."""
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(rounds):
        for mode in modes:
            cmd = [sys.executable, "-m", "dpsweep.bench.step", mode, str(batch_size), str(length),
                   str(steps), str(warmup), device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary: dict = {"batch_size": batch_size, "length": length, "steps_per_run": steps, "rounds": rounds,
                     "device": device}
    for mode in modes:
        summary[mode] = {
            "step_s_median": statistics.median(r["step_s"] for r in runs[mode]),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs[mode]),
        }
        if "peak_gpu_mb" in runs[mode][0]:
            summary[mode]["peak_gpu_mb"] = statistics.median(r["peak_gpu_mb"] for r in runs[mode])
    base = summary["non_private"]
    for mode in modes[1:]:
        summary[f"{mode}_time_ratio"] = summary[mode]["step_s_median"] / base["step_s_median"]
        summary[f"{mode}_peak_memory_ratio"] = summary[mode]["peak_rss_mb"] / base["peak_rss_mb"]
    return summary


if __name__ == "__main__":
    mode, batch, length, steps, warmup = sys.argv[1], *map(int, sys.argv[2:6])
    device = sys.argv[6] if len(sys.argv) > 6 else "cpu"
    print(json.dumps(_one(mode, batch_size=batch, length=length, steps=steps, warmup=warmup, device=device)))
