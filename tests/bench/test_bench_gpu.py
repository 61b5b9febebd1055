"""The pieces of `dpsweep bench gpu` that run without a GPU: the BERT-base-from-config step
bench, the concurrency levels' search spaces and figures, a real two-level run on the CPUs,
the summary table, and the one-line refusal."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

from dpsweep.bench.concurrency import Level, level_figures, level_mapping
from dpsweep.sweep.callbacks import TrialTiming
from dpsweep.sweep.spec import spec_from_mapping

TIMEOUT_S = 300  # fresh interpreters that import torch, on a busy 2-core box


def test_level_search_space_gives_each_trial_its_share_of_the_gpu(tmp_path):
    for k in (1, 2, 4):
        mapping = level_mapping(Level(trials_at_once=k, cpus_per_trial=3.0, gpu=True), data=tmp_path, trials=8,
                                store=str(tmp_path / "store"))
        spec = spec_from_mapping(mapping, source="test")  # the validation a YAML file goes through
        r = spec.resources
        assert (r.workers_per_trial, r.max_concurrent_trials, r.cpus_per_worker) == (1, k, 3.0)
        assert math.isclose(r.gpus_per_worker, 1 / k, rel_tol=1e-12) and r.use_gpu
        assert spec.params == () and spec.epsilons == (8.0,) and spec.total_trials == 8  # identical trials
        assert (spec.base.max_length, spec.base.lora_layers, spec.base.model) == (64, 1, "default")
    cpu = spec_from_mapping(level_mapping(Level(trials_at_once=2, cpus_per_trial=1.0, gpu=False), data=tmp_path,
                                          trials=2, store="s"), source="test").resources
    assert cpu.gpus_per_worker == 0.0 and cpu.max_concurrent_trials == 2 and not cpu.use_gpu


def test_level_figures_rate_over_the_trial_phase():
    now = time.perf_counter()
    # two trials at once: one ran 5 s to now-2, one 6 s to now; the phase is now-7 .. now
    timings = [TrialTiming("a", 8.0, driver_seconds=5.0, trial_seconds=4.5, parts={"train_seconds": 1.0},
                           peak_gpu_mb=900.0, finished_s=now - 2.0),
               TrialTiming("b", 8.0, driver_seconds=6.0, trial_seconds=5.5, parts={"train_seconds": 2.0},
                           peak_gpu_mb=1000.0, finished_s=now)]
    rows = [{"status": "completed"}, {"status": "completed"}]
    out = level_figures(Level(trials_at_once=2, cpus_per_trial=1.0, gpu=True), timings, rows=rows,
                        sweep_seconds=20.0)
    assert math.isclose(out["trial_phase_seconds"], 7.0, abs_tol=1e-9)
    assert math.isclose(out["trials_per_hour"], 2 / 7 * 3600, rel_tol=1e-9)
    assert math.isclose(out["trials_per_hour_whole_sweep"], 2 / 20 * 3600, rel_tol=1e-9)
    assert out["peak_gpu_mb_per_trial_max"] == 1000.0 and out["peak_gpu_mb_bound_all_at_once"] == 2000.0
    assert (out["completed"], out["failed"], out["gpus_per_worker"]) == (2, 0, 0.5)
    assert out["trial_seconds_median"] == 5.5 and out["train_seconds_median"] == 1.5


@pytest.mark.cli_subprocess  # one child process per measurement
@pytest.mark.slow(reason="BERT-base-sized steps on CPU, about 40 s; the shape test below runs in CI")
def test_bert_base_from_config_steps_on_cpu_with_and_without_dp():
    from dpsweep.bench.step import bench_step

    out = bench_step(model="bert-base", device="cpu", batch_size=2, length=16, steps=1, warmup=1, rounds=1,
                     modes=("non_private", "dp_ghost"))
    assert 105e6 < out["parameters"] < 115e6  # BERT-base: about 110M parameters (not MiniLM's 23M)
    assert out["non_private"]["trained_parameters"] == out["dp_ghost"]["trained_parameters"] > 0
    assert out["non_private"]["step_s_median"] > 0 and out["dp_ghost"]["step_s_median"] > 0
    assert out["dp_ghost_time_ratio"] > 0 and out["dp_ghost_peak_memory_ratio"] > 0
    assert "peak_gpu_mb" not in out["non_private"]  # a CPU run reports no GPU memory


def test_bert_base_from_config_has_bert_base_shape_and_lora_everywhere():
    import torch

    from dpsweep.bench.step import bench_model

    torch.manual_seed(0)
    net, tokenizer = bench_model("bert-base", num_labels=14, device="meta")  # shapes only: no memory, fast
    config = net.backbone.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size, config.vocab_size) == (768, 12, 12, 3072, len(tokenizer))
    adapted = {int(n.split(".layer.")[1].split(".")[0]) for n, p in net.named_parameters()
               if p.requires_grad and "lora_" in n}
    assert adapted == set(range(12))
    with pytest.raises(ValueError, match="model must be one of minilm, bert-base"):
        bench_model("bert-large", num_labels=14)


def test_config_vocabulary_smaller_than_the_tokenizer_is_refused():
    from transformers import BertConfig

    from dpsweep.errors import ModelError
    from dpsweep.model import ModelSpec, classifier_from_config

    tiny = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64)
    with pytest.raises(ModelError, match=r"vocab_size = 100 is less than the tokenizer's 30522 tokens"):
        classifier_from_config(tiny, spec=ModelSpec(), num_labels=3)


@pytest.mark.ray
@pytest.mark.slow  # about 4 minutes on a busy 2-core box: two sweeps of two trials each
def test_concurrency_levels_run_real_sweeps_on_the_cpus(synth_mimic):
    import ray

    from dpsweep.bench.concurrency import bench_concurrency

    tiny = dict(max_length=16, lora_layers=1, rank=2, batch_size=64, physical_batch_size=32, max_epochs=1.0,
                max_steps=2, seed=0)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        out = bench_concurrency(data=synth_mimic, levels=(1, 2), trials=2, device="cpu", cpus_per_trial=1.0,
                                trial=tiny)
    finally:
        ray.shutdown()
    assert [r["trials_at_once"] for r in out["levels"]] == [1, 2]
    for row in out["levels"]:
        assert (row["trials"], row["completed"], row["failed"]) == (2, 2, 0)
        assert row["gpus_per_worker"] == 0.0 and row["peak_gpu_mb_per_trial_max"] is None
        assert 0 < row["trial_phase_seconds"] <= row["sweep_seconds"]
        assert row["trials_per_hour"] >= row["trials_per_hour_whole_sweep"] > 0
    assert out["levels"][0]["speedup_over_first_level"] == 1.0


def test_a_sweep_starting_its_own_ray_sees_only_the_chosen_gpu(monkeypatch):
    from dpsweep.bench.concurrency import _one_gpu_for_ray

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    with _one_gpu_for_ray("cuda:1"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5" and "RAY_ADDRESS" not in os.environ
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5" and os.environ["RAY_ADDRESS"] == "10.0.0.1:6379"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with _one_gpu_for_ray("cuda:2"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_summary_table_renders_every_part():
    from dpsweep.bench.gpu import summary_lines

    # A report of the shape gpu_check returns; the figures are placeholders, not measurements.
    trial = {"weighted_f1": 0.5, "epsilon": 8.0, "steps": 10, "step_seconds": 0.01, "wall_seconds": 3.0}
    step = {"model": "minilm", "non_private": {"step_s_median": 0.01, "peak_gpu_mb": 100.0},
            "dp_ghost": {"step_s_median": 0.02, "peak_gpu_mb": 150.0}, "dp_ghost_time_ratio": 2.0}
    level = {"trials_at_once": 1, "trials_per_hour": 100.0, "trials_per_hour_whole_sweep": 50.0,
             "speedup_over_first_level": 1.0, "peak_gpu_mb_per_trial_max": 700.0, "failed": 0}
    report = {"gpu": "a GPU", "device": "cuda:0", "dp_trial": trial, "non_private_trial": trial,
              "predict": {"max_abs_difference": 0.0}, "step": {"minilm": step},
              "concurrency": {"trials_per_level": 8,
                              "levels": [level, {**level, "trials_at_once": 2, "peak_gpu_mb_per_trial_max": None}]}}
    text = "\n".join(summary_lines(report))
    assert "minilm    dp_ghost" in text and "2.00x" in text and "k=1" in text and "700" in text
    assert "k=2" in text  # a level without GPU figures (trials on the CPUs) prints "-"


def test_bench_gpu_refuses_in_one_line_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the refusal is for machines without one")
    proc = subprocess.run([sys.executable, "-m", "dpsweep.cli", "bench", "gpu", "--data", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert "no CUDA GPU is visible" in proc.stderr and not (tmp_path / "d").exists()
    assert "--device cpu" not in proc.stderr  # the hint for training does not apply to a GPU check


def test_bench_gpu_refuses_a_cpu_device_before_anything_runs(tmp_path):
    from dpsweep.bench.gpu import gpu_check
    from dpsweep.errors import UserInputError

    with pytest.raises(UserInputError, match="it measures a CUDA GPU; pass --device cuda"):
        gpu_check(data=tmp_path / "d", device="cpu")
    assert not (tmp_path / "d").exists()
