"""DP step vs non-private step: time and peak memory, side by side.

Each measurement runs in its own child process (so its peak RSS is its own), and the
modes alternate round by round so that drift in machine load hits both alike. A step is
forward + backward + optimizer step on a fixed batch of real-length token sequences;
the DP step adds Opacus' per-sample gradients, clipping and noise.

Two models: the embedded MiniLM (6 layers, 384 wide) and a BERT-base-sized one (12
layers, 768 wide, 110M parameters) built from its config with random weights, so nothing
is downloaded; step cost does not depend on what the weights are. Both get LoRA on every
layer (the ModelSpec default) and the MiniLM tokenizer.
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
MODELS = ("minilm", "bert-base")
# BERT-base's shape (Devlin et al. 2019); the vocabulary is the MiniLM tokenizer's
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512)


def bench_model(model: str, *, num_labels: int, device: str = "cpu"):
    """(classifier, tokenizer) of a step-bench model: "minilm" (embedded) or "bert-base" (from config)."""
    from dpsweep.model import ModelSpec, classifier_from_config, load_classifier

    if model == "minilm":
        return load_classifier(ModelSpec(), num_labels=num_labels, device=device)
    if model == "bert-base":
        from transformers import BertConfig

        from dpsweep.model.loading import load_tokenizer, resolve_model_path

        vocab = len(load_tokenizer(resolve_model_path("default")))
        return classifier_from_config(BertConfig(vocab_size=vocab, **BERT_BASE), spec=ModelSpec(),
                                      num_labels=num_labels, device=device)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")


def _one(mode: str, *, batch_size: int, length: int, steps: int, warmup: int, device: str = "cpu",
         model: str = "minilm") -> dict:
    """One measurement (run in a child process by bench_step): median step time and peak memory."""
    import torch
    from opacus import PrivacyEngine

    from dpsweep.console import quiet_libraries
    from dpsweep.settings import TrialConfig
    from dpsweep.train.loop import clipping_arguments, optimizer_and_schedule
    from dpsweep.train.loss import MultiLabelBCE

    quiet_libraries()
    torch.manual_seed(0)
    net, tokenizer = bench_model(model, num_labels=14, device=device)
    trained = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    input_ids = torch.randint(1000, tokenizer.vocab_size, (batch_size, length)).to(device)
    attention = torch.ones_like(input_ids)
    targets = (torch.rand(batch_size, 14) < 0.2).float().to(device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)  # from here: model, batch and steps (not init temporaries)
    config = TrialConfig(clipping="per_layer" if mode == "dp_hooks" else "flat")
    optimizer, _ = optimizer_and_schedule(net, config, total_steps=steps + warmup)
    criterion = MultiLabelBCE("mean")
    if mode != "non_private":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(input_ids), batch_size=batch_size)
        out = PrivacyEngine(accountant="prv").make_private(
            module=net, optimizer=optimizer, data_loader=loader, criterion=criterion,
            noise_multiplier=1.0, poisson_sampling=False, **clipping_arguments(optimizer, config),
            grad_sample_mode="ghost" if mode == "dp_ghost" else "hooks")
        net, optimizer = out[0], out[1]
        if mode == "dp_ghost":
            criterion = out[2]
    rss_loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = criterion(net(input_ids, attention), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)  # GPU work is asynchronous: time it to the end
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"mode": mode, "model": model, "parameters": total, "trained_parameters": trained,
           "step_s": statistics.median(times), "peak_rss_mb": peak_mb, "rss_after_load_mb": rss_loaded_mb}
    if cuda:
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def bench_step(*, batch_size: int = 32, length: int = 128, steps: int = 6, warmup: int = 2,
               rounds: int = 3, modes: tuple[str, ...] = ("non_private", "dp_hooks"), device: str = "cpu",
               model: str = "minilm") -> dict:
    """Median step time and peak memory per mode of `model`, and the ratios DP / non-private (on `device`).

    The first mode is the base of the ratios (non_private unless told otherwise). Peak GPU
    memory (torch.cuda.max_memory_allocated over the steps) is each child process' own.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be among {', '.join(MODES)}, got {list(modes)!r}")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(rounds):
        for mode in modes:
            cmd = [sys.executable, "-m", "dpsweep.bench.step", mode, str(batch_size), str(length),
                   str(steps), str(warmup), device, model]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"step bench child ({model}, {mode}) exited {out.returncode}: "
                                   f"{out.stderr.strip()[-1500:]}")
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = runs[modes[0]][0]
    summary: dict = {"model": model, "parameters": first["parameters"], "batch_size": batch_size,
                     "length": length, "steps_per_run": steps, "rounds": rounds, "device": device}
    for mode in modes:
        summary[mode] = _mode_summary(runs[mode])
    base = summary[modes[0]]
    for mode in modes[1:]:
        summary[f"{mode}_time_ratio"] = summary[mode]["step_s_median"] / base["step_s_median"]
        summary[f"{mode}_peak_memory_ratio"] = summary[mode]["peak_rss_mb"] / base["peak_rss_mb"]
        if "peak_gpu_mb" in base:
            summary[f"{mode}_peak_gpu_memory_ratio"] = summary[mode]["peak_gpu_mb"] / base["peak_gpu_mb"]
    return summary


def _mode_summary(runs: list[dict]) -> dict:
    out = {"step_s_median": statistics.median(r["step_s"] for r in runs),
           "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
           "trained_parameters": runs[0]["trained_parameters"]}
    if "peak_gpu_mb" in runs[0]:
        out["peak_gpu_mb"] = statistics.median(r["peak_gpu_mb"] for r in runs)
    return out


if __name__ == "__main__":
    # mode batch length steps warmup [device [model]]
    mode, batch, length, steps, warmup = sys.argv[1], *map(int, sys.argv[2:6])
    device = sys.argv[6] if len(sys.argv) > 6 else "cpu"
    model = sys.argv[7] if len(sys.argv) > 7 else "minilm"
    print(json.dumps(_one(mode, batch_size=batch, length=length, steps=steps, warmup=warmup, device=device,
                          model=model)))
