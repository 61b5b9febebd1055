"""Benchmarks that train real trials: synthetic MIMIC-CXR and the real CT reports.

Each runs the non-private and the DP trial back to back in one process and prints
them beside the plain baselines and the trivial floors, so the figures compare
like with like.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from dpsweep.train import TrialConfig, floors, run_trial

SHARED_CT = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets" / "ct-clip-text"

# Settings chosen for the real, long CT reports on a 2-core CPU (see README, "Real data").
REAL_CT_DEFAULTS = dict(dataset_format="csv", max_length=256, batch_size=64, physical_batch_size=16,
                        max_epochs=8.0, rank=4, lora_layers=2, lr=5e-3, head_lr=0.3, clip=1.0, seed=0)
# DP gains little from more epochs on 3.6k training reports but much on 10.9k (README).
SYNTH_DEFAULTS = dict(dataset_format="mimic-cxr", max_length=128, batch_size=1024, physical_batch_size=64,
                      max_epochs=24.0, rank=4, lora_layers=1, lr=1e-2, head_lr=0.3, clip=1.0, seed=0)


def _row(name: str, result) -> dict:
    d = result.to_dict()
    return {"model": name, "epsilon": d["epsilon"], "weighted_f1": d.get("weighted_f1"),
            "macro_f1": d.get("macro_f1"), "weighted_f1_tuned": d.get("weighted_f1_tuned"),
            "macro_f1_tuned": d.get("macro_f1_tuned"), "auroc_macro": d.get("auroc_macro"),
            "steps": d["steps"], "sigma": d["sigma"], "train_seconds": d["train_seconds"]}


def compare_trials(base: TrialConfig, *, epsilons: tuple[float, ...] = (math.inf, 8.0),
                   baseline: bool = True) -> dict:
    """Train one trial per ε on the same split; add floors and (optionally) TF-IDF."""
    from dpsweep.bench.baselines import tfidf_logreg
    from dpsweep.train.loop import load_trial_corpus

    corpus = load_trial_corpus(base)
    rows = []
    f = floors(corpus.val.labels, corpus.val.mask, corpus.train.labels, corpus.label_names)
    rows.append({"model": "floor: every label positive", "epsilon": None,
                 "weighted_f1": f["all_positive_weighted_f1"], "macro_f1": f["all_positive_macro_f1"]})
    rows.append({"model": "floor: label frequencies", "epsilon": None,
                 "weighted_f1": f["label_frequency_weighted_f1"], "macro_f1": f["label_frequency_macro_f1"]})
    if baseline:
        rows.append({"model": "TF-IDF + logistic regression", "epsilon": math.inf, **tfidf_logreg(corpus)})
    for eps in epsilons:
        result = run_trial(base.override(epsilon=eps), corpus=corpus)
        name = "MiniLM (embedded)" if base.model == "default" else base.model
        rows.append(_row(f"{name} + LoRA r={base.rank}", result))
    return {"dataset": corpus.name, "n_train": len(corpus.train), "n_val": len(corpus.val),
            "config": base.to_dict(), "rows": rows}


def markdown_table(report: dict) -> str:
    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return "∞" if math.isinf(v) else f"{v:.3f}"
        return str(v)

    cols = ["model", "epsilon", "weighted_f1", "macro_f1", "weighted_f1_tuned", "macro_f1_tuned", "steps"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in report["rows"]]
    return "\n".join(lines)


def bench_real(path: Path = SHARED_CT, **overrides) -> dict:
    if not (Path(path) / "train.csv").is_file():
        raise FileNotFoundError(f"{path}/train.csv not found: the real CT reports live in ../shared/datasets")
    base = TrialConfig(data_path=str(path), **{**REAL_CT_DEFAULTS, **overrides})
    return compare_trials(base)


def bench_synthetic(path: Path, *, n: int = 4000, **overrides) -> dict:
    from dpsweep.data import write_synthetic

    if not Path(path).exists():
        write_synthetic("mimic-cxr", path, n=n, seed=0)
    base = TrialConfig(data_path=str(path), **{**SYNTH_DEFAULTS, **overrides})
    return compare_trials(base, baseline=True)


def dump(report: dict, out: Path | None) -> None:
    from dpsweep.console import json_safe

    print(markdown_table(report))
    if out:
        Path(out).write_text(json.dumps(json_safe(report), indent=1))
