"""`dpsweep bench scale`: what reading, tokenising and caching cost as a corpus grows.

For each size it writes a synthetic MIMIC-CXR of that many studies (once, under a cache
folder), then, in a fresh process (so peak memory is this size's alone):

1. reads the corpus (`read_seconds`) and tokenises every split once (`tokenize_seconds`),
   as a sweep's driver does; `peak_rss_gb` is the process's peak after these two steps;
2. measures the frozen-layer cache: fp16 bytes for the whole training split, whether it
   would be held in memory or memory-mapped (`dpsweep.model.prefix.MEMORY_BUDGET_BYTES`),
   and the seconds to compute it, timed on `cache_sample` reports (`cache_seconds_per_1k`)
   since the whole split takes hours on a CPU; a sweep computes it once, not per trial;
3. runs one trial with `max_steps` steps on the tokenised corpus, as a sweep's trial gets
   it (no read, no tokenising): `step_seconds`, and `outside_training_share`, the share of
   the trial's wall time spent neither in training steps nor in evaluating the validation
   and test splits (loading the model, planning, preparing batches): the cost a sweep pays
   per trial that does not scale with training. Evaluation is reported apart
   (`eval_seconds`): it is work on the model, and a longer trial dilutes it. The trial
   evaluates the first `eval_reports` validation and test reports only (full evaluation at
   227k studies takes about 20 minutes on 2 CPU cores); a shorter evaluation makes the trial's
   wall time shorter, so the share comes out larger, not smaller.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import resource
import time
from pathlib import Path

DEFAULT_SIZES = (10_000, 50_000, 227_827)
# A DP trial as the mimic-cxr search space runs one (ε 8, LoRA on the top layer), its cache off:
# the bench times steps through every layer, the cost a trial pays without the sweep's cache.
TRIAL = dict(dataset_format="mimic-cxr", max_length=128, batch_size=256, physical_batch_size=64, rank=4,
             lora_layers=1, prefix_cache=False, epsilon=8.0, sigma=1.0, lr=1e-2, head_lr=0.3, seed=0,
             eval_batch_size=256)


def delta_for(n_train: int) -> float:
    """A power of ten at most 1/(10 n): δ must stay below 1/n (1e-5 at 10k reports, 1e-7 at 205k)."""
    return 10.0 ** -math.ceil(math.log10(10 * n_train))


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB


def corpus_folder(cache_dir: Path, studies: int) -> Path:
    """The synthetic corpus of `studies` studies under `cache_dir`, written (seed 0) if absent."""
    from dpsweep.data import write_synthetic

    folder = Path(cache_dir) / f"synth-mimic-{studies}"
    if not (folder / "files").is_dir():
        write_synthetic("mimic-cxr", folder, n=studies, seed=0)
    return folder


def measure_size(folder: str, *, studies: int, max_steps: int, cache_sample: int, model: str,
                 eval_reports: int) -> dict:
    """One size's figures (run this in a fresh process: `peak_rss_gb` is the process's peak)."""
    from dpsweep.model.loading import load_tokenizer, resolve_model_path
    from dpsweep.settings import TrialConfig
    from dpsweep.train.loop import load_trial_corpus
    from dpsweep.train.tokens import tokenize_corpus

    config = TrialConfig(data_path=folder, model=model, max_steps=max_steps, **TRIAL)
    t0 = time.perf_counter()
    corpus = load_trial_corpus(config)
    read_seconds = time.perf_counter() - t0
    config = config.override(delta=delta_for(len(corpus.train)))
    tokenizer = load_tokenizer(resolve_model_path(config.model))
    t1 = time.perf_counter()
    tokens = tokenize_corpus(corpus, tokenizer, max_length_tokens=config.max_length)
    tokenize_seconds = time.perf_counter() - t1
    peak = _peak_rss_gb()
    # the reader's process pool (above 20k report files): its largest child, and the bound on all of them
    reader_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    del corpus  # a sweep's trials never see the texts
    out = {"studies": studies, "train_reports": len(tokens.train), "reports": tokens.n_reports,
           "read_seconds": round(read_seconds, 2), "tokenize_seconds": round(tokenize_seconds, 2),
           "peak_rss_gb": round(peak, 3), "reader_child_peak_rss_gb": round(reader_peak, 3),
           "token_cache_mb": round(tokens.nbytes / 1e6, 1)}
    out.update(_cache_figures(config, tokens, cache_sample))
    out.update(_trial_figures(config, _eval_capped(tokens, eval_reports)))
    return out


def _head(split, n: int):
    """The first n reports of a TokenizedSplit."""
    from dataclasses import replace

    from dpsweep.train.tokens import TokenArrays

    n = min(n, len(split))
    tokens = TokenArrays(split.tokens.ids[: split.tokens.offsets[n]], split.tokens.offsets[: n + 1])
    return replace(split, tokens=tokens, labels=split.labels[:n], mask=split.mask[:n], groups=split.groups[:n])


def _eval_capped(tokens, eval_reports: int):
    from dataclasses import replace

    test = _head(tokens.test, eval_reports) if tokens.test is not None else None
    return replace(tokens, val=_head(tokens.val, eval_reports), test=test)


def _cache_figures(config, tokens, cache_sample: int) -> dict:
    from dpsweep.model.prefix import MEMORY_BUDGET_BYTES, estimated_bytes
    from dpsweep.train.loop import trial_model
    from dpsweep.train.tokens import TokenArrays

    model, _ = trial_model(config.override(prefix_cache=True), num_labels=len(tokens.label_names))
    full = estimated_bytes(tokens.train.tokens, model.backbone.config.hidden_size)
    rows = TokenArrays.from_lists([tokens.train.tokens[i] for i in range(min(cache_sample, len(tokens.train)))])
    t0 = time.perf_counter()
    why_not = model.enable_prefix_cache(rows, pad_id=0)
    seconds = time.perf_counter() - t0
    return {"cache_bytes_fp16": full, "cache_path": "memory" if full <= MEMORY_BUDGET_BYTES else "memory-mapped",
            "cache_sample_reports": len(rows),
            "cache_seconds_per_1k": None if why_not else round(seconds / len(rows) * 1000, 3)}


def _trial_figures(config, tokens) -> dict:
    from dpsweep.train.loop import run_trial

    t0 = time.perf_counter()
    result = run_trial(config, corpus=tokens, log=lambda _m: None)
    wall = time.perf_counter() - t0
    outside = max(wall - result.train_seconds - result.eval_seconds, 0.0)
    return {"steps": result.ledger.steps, "step_seconds": round(result.step_seconds, 3),
            "train_seconds": round(result.train_seconds, 2), "eval_seconds": round(result.eval_seconds, 2),
            "trial_load_seconds": round(result.load_seconds, 2), "trial_wall_seconds": round(wall, 2),
            "eval_reports": result.n_val + result.n_test, "outside_training_share": round(outside / wall, 4),
            "trial_peak_rss_gb": round(_peak_rss_gb(), 3)}


def _child(conn, folder: str, kwargs: dict) -> None:
    from dpsweep.console import quiet_libraries

    quiet_libraries()  # a spawned interpreter: the parent's warning filters are not inherited
    try:
        conn.send(measure_size(folder, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def bench_scale(*, sizes=DEFAULT_SIZES, max_steps: int = 5, cache_dir: Path, cache_sample: int = 1024,
                eval_reports: int = 2000, model: str = "default", emit=print) -> list[dict]:
    """Measure every size in its own process; `emit` each size's figures as they come."""
    context = multiprocessing.get_context("spawn")  # no torch state shared with this process
    reports = []
    for studies in sizes:
        folder = corpus_folder(cache_dir, studies)
        parent, child = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(child, str(folder), dict(
            studies=studies, max_steps=max_steps, cache_sample=cache_sample, model=model,
            eval_reports=eval_reports)))
        process.start()
        child.close()
        report = parent.recv()
        process.join()
        if "error" in report:
            raise RuntimeError(f"bench scale at {studies} studies failed: {report['error']}")
        reports.append(report)
        emit(report)
    return reports


def table_line(report: dict) -> str:
    share = report["outside_training_share"]
    return (f"{report['studies']:>8} studies: read {report['read_seconds']:6.1f} s, tokenize "
            f"{report['tokenize_seconds']:6.1f} s, peak {report['peak_rss_gb']:.2f} GB (reader processes "
            f"{report['reader_child_peak_rss_gb']:.2f} GB each at most); cache "
            f"{report['cache_bytes_fp16'] / 2**30:.2f} GiB fp16 ({report['cache_path']}), "
            f"{report['cache_seconds_per_1k']} s per 1k reports; step {report['step_seconds']:.2f} s; "
            f"outside training {share:.1%}")


def print_json(report: dict) -> None:
    print(json.dumps(report), flush=True)
