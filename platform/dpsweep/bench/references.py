"""Compute and store a split's references: the non-private TF-IDF peer and the two floors.

A sweep calls :func:`record_references` on the corpus it already read; ``dpsweep store
references --compute`` and the trial benchmarks call it too. The figures go to the store's
sidecar (see :mod:`dpsweep.results.references`); only aggregate metrics are kept, never a
per-label figure or a report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dpsweep.results.references import has_references, reference_rows, write_references

# Metrics stored per reference: the validation metrics a front may be drawn against.
REFERENCE_METRICS = ("weighted_f1", "macro_f1", "micro_f1", "weighted_f1_tuned", "macro_f1_tuned", "auroc_macro")
FREQUENCY_DRAWS = 20  # as train.metrics.floors: the label-frequency floor is a mean over draws


def _mean(draws: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric in REFERENCE_METRICS:
        values = [d[metric] for d in draws if d[metric] is not None]
        out[metric] = float(np.mean(values)) if values else None
    return out


def reference_metrics(corpus: Any, *, seed: int = 0) -> dict[str, dict[str, float | None]]:
    """{kind: {metric: value}} on the corpus' validation split.

    The floors draw exactly as :func:`dpsweep.train.metrics.floors` (same generator, same
    order), so their threshold-0.5 figures equal its figures.
    """
    from dpsweep.bench.baselines import tfidf_logreg_probs, validation_metrics

    n, n_labels = corpus.val.labels.shape
    rng = np.random.default_rng(seed)
    prevalence = corpus.train.labels.mean(0)
    draws = [validation_metrics((rng.random((n, n_labels)) < prevalence).astype(float), corpus)
             for _ in range(FREQUENCY_DRAWS)]
    return {"tfidf_logreg": validation_metrics(tfidf_logreg_probs(corpus, seed=seed), corpus),
            "all_positive": validation_metrics(np.ones((n, n_labels)), corpus),
            "label_frequency": _mean(draws)}


def corpus_split(config: Any, corpus: Any) -> dict[str, Any]:
    """The split key of a corpus read with ``config`` (a TrialConfig): as its trial rows record it."""
    return {"val_fraction": config.val_fraction, "seed": config.seed, "n_train": len(corpus.train),
            "n_val": len(corpus.val), "sections": config.sections, "uncertain_policy": config.uncertain_policy}


def store_references(store: Any, metrics: dict[str, dict[str, float | None]], corpus: Any, config: Any, *,
                     dataset: str) -> str:
    """Store references computed on ``corpus`` (read with ``config``) under ``dataset``; the file's path."""
    return write_references(store, reference_rows(metrics, dataset=dataset, dataset_format=corpus.format,
                                                  split=corpus_split(config, corpus)))


def record_references(store: Any, corpus: Any, config: Any, *, dataset: str, force: bool = False,
                      log: Callable[[str], None] = print) -> dict[str, dict[str, float | None]] | None:
    """Compute the references of ``corpus`` and store them, unless stored already (then None)."""
    split = corpus_split(config, corpus)
    if not force and has_references(store, dataset=dataset, split=split):
        return None
    started = time.perf_counter()
    metrics = reference_metrics(corpus, seed=config.seed)
    store_references(store, metrics, corpus, config, dataset=dataset)
    log(f"references of {dataset} computed in {time.perf_counter() - started:.1f} s and stored in {store.uri}")
    return metrics
