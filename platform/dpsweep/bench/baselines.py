"""Plain baselines to measure the transformer against: TF-IDF + logistic regression."""

from __future__ import annotations

import numpy as np

from dpsweep.train.metrics import evaluate, tune_thresholds


def tfidf_logreg_probs(corpus, *, seed: int = 0) -> np.ndarray:
    """Validation probabilities of one-vs-rest logistic regression on word 1-2-gram TF-IDF.

    NON-private: the vocabulary, IDF and weights are fitted on the training split. A
    reference to read DP results against, never a model to release. Labels with a single
    class in training are predicted at their training value.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform(corpus.train.texts)
    x_val = vectorizer.transform(corpus.val.texts)
    y_train = corpus.train.labels > 0.5
    probs = np.zeros((len(corpus.val), y_train.shape[1]))
    for j in range(y_train.shape[1]):
        known = corpus.train.mask[:, j]
        y = y_train[known, j]
        if y.min() == y.max():
            probs[:, j] = float(y[0]) if len(y) else 0.0
            continue
        clf = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced", random_state=seed)
        clf.fit(x_train[known], y)
        probs[:, j] = clf.predict_proba(x_val)[:, 1]
    return probs


def validation_metrics(probs: np.ndarray, corpus) -> dict[str, float | None]:
    """Validation metrics of probabilities at threshold 0.5 and with per-label thresholds tuned on validation."""
    val = corpus.val
    plain = evaluate(probs, val.labels, val.mask, corpus.label_names)
    tuned = evaluate(probs, val.labels, val.mask, corpus.label_names,
                     thresholds=tune_thresholds(probs, val.labels, val.mask))
    return {"weighted_f1": plain.weighted_f1, "macro_f1": plain.macro_f1, "micro_f1": plain.micro_f1,
            "weighted_f1_tuned": tuned.weighted_f1, "macro_f1_tuned": tuned.macro_f1,
            "auroc_macro": plain.auroc_macro}


def tfidf_logreg(corpus, *, seed: int = 0) -> dict:
    """Validation metrics of the TF-IDF peer at threshold 0.5 and with per-label tuned thresholds."""
    return validation_metrics(tfidf_logreg_probs(corpus, seed=seed), corpus)
