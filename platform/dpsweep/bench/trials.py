"""Benchmarks that train real trials: synthetic MIMIC-CXR and the real CT reports.

Each runs the non-private and the DP trial back to back in one process and prints
them beside the references a sweep stores (the non-private TF-IDF peer and the two
floors, computed on the same split), so the figures compare like with like.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from dpsweep.train import TrialConfig, run_trial

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


def reference_rows(metrics: dict[str, dict[str, float | None]]) -> list[dict]:
    """Bench-table rows of the references: the non-private TF-IDF peer, then the two floors."""
    from dpsweep.results.references import FLOORS, REFERENCE_KINDS

    rows = []
    for kind in ("tfidf_logreg", *FLOORS):
        label = REFERENCE_KINDS[kind] if kind not in FLOORS else f"floor: {REFERENCE_KINDS[kind]}"
        rows.append({"model": label, "epsilon": math.inf if kind == "tfidf_logreg" else None, **metrics[kind]})
    return rows


def compare_trials(base: TrialConfig, *, epsilons: tuple[float, ...] = (math.inf, 8.0),
                   baseline: bool = True, store=None) -> dict:
    """Train one trial per ε on the same split, beside the references of that split.

    The references (TF-IDF peer unless ``baseline`` is False, and the floors) are those a
    sweep stores; with ``store`` (a ResultStore) they are stored there too.
    """
    from dpsweep.bench.references import reference_metrics, store_references
    from dpsweep.train.loop import load_trial_corpus

    corpus = load_trial_corpus(base)
    metrics = reference_metrics(corpus, seed=base.seed)
    if store is not None:
        store_references(store, metrics, corpus, base, dataset=corpus.name)
    rows = [r for r in reference_rows(metrics) if baseline or not math.isinf(r["epsilon"] or 0)]
    for eps in epsilons:
        result = run_trial(base.override(epsilon=eps), corpus=corpus)
        name = "MiniLM (embedded)" if base.model == "default" else base.model
        rows.append(_row(f"{name} + LoRA r={base.rank}", result))
    return {"dataset": corpus.name, "n_train": len(corpus.train), "n_val": len(corpus.val),
            "config": base.to_dict(), "references": metrics, "rows": rows}


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


def bench_real(path: Path = SHARED_CT, *, store=None, **overrides) -> dict:
    if not (Path(path) / "train.csv").is_file():
        raise FileNotFoundError(f"{path}/train.csv not found: the real CT reports live in ../shared/datasets")
    base = TrialConfig(data_path=str(path), **{**REAL_CT_DEFAULTS, **overrides})
    return compare_trials(base, store=store)


def bench_synthetic(path: Path, *, n: int = 4000, store=None, **overrides) -> dict:
    from dpsweep.data import write_synthetic

    if not Path(path).exists():
        write_synthetic("mimic-cxr", path, n=n, seed=0)
    base = TrialConfig(data_path=str(path), **{**SYNTH_DEFAULTS, **overrides})
    return compare_trials(base, baseline=True, store=store)


def dump(report: dict, out: Path | None) -> None:
    from dpsweep.console import json_safe

    print(markdown_table(report))
    if out:
        Path(out).write_text(json.dumps(json_safe(report), indent=1))
