"""The model card (README.md) of a saved model: privacy ledger, data sizes, metrics.

Hugging Face style: YAML front matter (library_name, base_model, tags, model-index with
the metrics) then a Markdown body. Plain numbers and names only: never report text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dpsweep import __version__

EPSILON_SCOPE = "per trial; excludes hyperparameter tuning"
DEFAULT_COVERAGE = (
    "ε bounds what this model's training run reveals about any one privacy unit of the "
    "training split. It is per trial: choosing this trial among the others of a sweep "
    "(hyperparameter tuning) spent privacy that this ε does not count."
)
_LEDGER_ROWS = (  # (ledger key, row label)
    ("epsilon_target", "ε target"),
    ("delta", "δ"),
    ("sigma", "σ (noise multiplier)"),
    ("clip", "C (per-sample clipping norm)"),
    ("sample_rate", "q (sampling rate)"),
    ("steps", "steps"),
    ("accountant", "accountant"),
)
_METRIC_ROWS = (  # (Metrics.to_dict key, row label)
    ("weighted_f1", "weighted F1 (threshold 0.5)"),
    ("weighted_f1_tuned", "weighted F1 (per-label thresholds)"),
    ("macro_f1", "macro F1 (threshold 0.5)"),
    ("macro_f1_tuned", "macro F1 (per-label thresholds)"),
    ("micro_f1", "micro F1 (threshold 0.5)"),
    ("auroc_macro", "macro AUROC"),
)


@dataclass(frozen=True)
class ModelCard:
    """What the card says about training: privacy ledger, data, metrics, provenance.

    ledger: `PrivacyLedger.to_dict()` (extra keys are shown too). val_metrics and
    test_metrics: `Metrics.to_dict()` keys, optionally with weighted_f1_tuned and
    macro_f1_tuned (the keys `dpsweep train --json` uses, without the test_ prefix).
    """

    ledger: dict[str, Any]
    dataset: str
    n_train: int
    n_val: int
    n_test: int = 0
    val_metrics: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] | None = None
    coverage: str = DEFAULT_COVERAGE
    epsilon_scope: str = EPSILON_SCOPE
    privacy_unit: str = "one report"
    dpsweep_version: str = __version__
    git_commit: str = "unknown"

    @classmethod
    def from_trial(cls, result, **overrides: Any) -> ModelCard:
        """The card of a completed `dpsweep.train.TrialResult` (git commit of this checkout)."""
        from dpsweep.train.record import git_commit

        unit = "one patient (all their reports)" if result.ledger.privacy_unit == "patient" else "one report"
        fields = dict(ledger=result.ledger.to_dict(), dataset=result.dataset, n_train=result.n_train,
                      privacy_unit=unit, coverage=_coverage(result.ledger),
                      n_val=result.n_val, n_test=result.n_test,
                      val_metrics=_metrics_dict(result.val, result.val_tuned),
                      test_metrics=_metrics_dict(result.test, result.test_tuned) if result.test else None,
                      git_commit=git_commit())
        return cls(**{**fields, **overrides})

    @property
    def private(self) -> bool:
        return str(self.ledger.get("accountant", "none")) != "none"


def _coverage(ledger) -> str:
    """What the card's ε covers (the ledger's own sentence), with where the data outside it went."""
    if not ledger.private:
        return "No differential privacy: the training reports are not protected."
    return (f"ε {ledger.covers()}. The ε of one patient is `epsilon_patient` in the table above. "
            "If this model was chosen among several trials, the tuning spent more: see the sweep's "
            "`epsilon_release` (random-stopping sweeps) or its composed ε.")


def _metrics_dict(plain, tuned) -> dict[str, Any]:
    out = plain.to_dict() if plain is not None else {}
    if tuned is not None:
        out["weighted_f1_tuned"], out["macro_f1_tuned"] = tuned.weighted_f1, tuned.macro_f1
    return out


def render_card(card: ModelCard, *, title: str, base_model_id: str, label_names: tuple[str, ...],
                thresholds: list[float], pooling: str, max_length: int, method: str = "lora") -> str:
    """README.md text: YAML front matter, then privacy, data, metrics, labels, usage."""
    import yaml

    front = {"library_name": "peft" if method == "lora" else "dpsweep", "base_model": base_model_id,
             "pipeline_tag": "text-classification",
             "tags": _tags(card), "model-index": [{"name": title, "results": _results(card)}]}
    what = {"lora": f"{base_model_id} with LoRA adapters and a linear head over {pooling} pooling, at most "
                    f"{max_length} tokens per report",
            "bitfit": f"{base_model_id} with trained bias terms and a linear head over {pooling} pooling, at "
                      f"most {max_length} tokens per report",
            "head": f"a linear head on frozen {base_model_id} features ({pooling} pooling), at most "
                    f"{max_length} tokens per report",
            "linear": "a linear model on TF-IDF features whose vocabulary, IDF and projection come from a "
                      "public corpus"}[method]
    body = [f"# {title}", "",
            f"Multi-label classifier of radiology reports ({len(label_names)} labels): {what}, "
            f"trained by dpsweep {card.dpsweep_version} (commit {card.git_commit}) "
            f"{'with differentially private SGD' if card.private else 'without differential privacy'}.",
            "", *_privacy_section(card), "", *_data_section(card), "", *_metrics_section(card, label_names),
            "", *_labels_section(label_names, thresholds), "", *_usage_section()]
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body) + "\n"


def _tags(card: ModelCard) -> list[str]:
    tags = ["dpsweep", "lora", "multi-label-classification", "radiology"]
    return tags + (["differential-privacy", "dp-sgd"] if card.private else ["non-private"])


def _results(card: ModelCard) -> list[dict[str, Any]]:
    out = []
    for split, metrics in (("validation", card.val_metrics), ("test", card.test_metrics)):
        values = [{"type": "f1" if "f1" in key else "roc_auc", "name": f"{label}, {split}",
                   "value": round(float(metrics[key]), 6)}
                  for key, label in _METRIC_ROWS if metrics and metrics.get(key) is not None]
        if values:
            out.append({"task": {"type": "text-classification", "name": "Multi-label report classification"},
                        "dataset": {"name": card.dataset, "type": card.dataset, "split": split},
                        "metrics": values})
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "∞" if math.isinf(value) else format(value, ".6g")
    return str(value)


def _privacy_section(card: ModelCard) -> list[str]:
    ledger = card.ledger
    if not card.private:
        return ["## Privacy", "", "Trained **without** differential privacy: no privacy guarantee (ε = ∞). "
                f"{ledger.get('steps', '?')} steps at sampling rate q = {_fmt(ledger.get('sample_rate', '?'))}."]
    rows = [f"| ε ({card.epsilon_scope}) | {_fmt(ledger.get('epsilon'))} |"]
    rows += [f"| {label} | {_fmt(ledger[key])} |" for key, label in _LEDGER_ROWS if key in ledger]
    known = {"epsilon", *(key for key, _ in _LEDGER_ROWS)}
    rows += [f"| {key} | {_fmt(value)} |" for key, value in ledger.items() if key not in known]
    rows.append(f"| privacy unit | {card.privacy_unit} |")
    return ["## Privacy", "", "| | |", "|---|---|", *rows, "", card.coverage]


def _data_section(card: ModelCard) -> list[str]:
    return ["## Data", "", f"Data set `{card.dataset}`: {card.n_train} training, {card.n_val} validation"
            f"{f' and {card.n_test} test' if card.n_test else ''} reports. No report text is stored "
            "in this folder."]


def _metrics_section(card: ModelCard, label_names: tuple[str, ...]) -> list[str]:
    splits = [(name, m) for name, m in (("validation", card.val_metrics), ("test", card.test_metrics)) if m]
    if not splits:
        return ["## Metrics", "", "No metrics were recorded."]
    head = "| metric | " + " | ".join(name for name, _ in splits) + " |"
    rule = "|---|" + "---|" * len(splits)
    rows = [f"| {label} | " + " | ".join(_fmt(m.get(key)) for _, m in splits) + " |"
            for key, label in _METRIC_ROWS if any(m.get(key) is not None for _, m in splits)]
    per_label = [f"| F1 {name} (threshold 0.5) | "
                 + " | ".join(_fmt(m.get("per_label_f1", {}).get(name)) for _, m in splits) + " |"
                 for name in label_names if any("per_label_f1" in m for _, m in splits)]
    return ["## Metrics", "", head, rule, *rows, *per_label, "",
            "Per-label thresholds were tuned on the validation split and applied unchanged to test."]


def _labels_section(label_names: tuple[str, ...], thresholds: list[float]) -> list[str]:
    rows = [f"| {name} | {t:.3f} |" for name, t in zip(label_names, thresholds, strict=True)]
    return ["## Labels and thresholds", "", "| label | tuned threshold |", "|---|---|", *rows]


def _usage_section() -> list[str]:
    return ["## Use", "",
            "`dpsweep predict --model THIS_FOLDER --input reports.csv --out predictions.csv`, or with "
            "plain transformers + peft + safetensors (dpsweep's docs/loading-a-model.md): load the base "
            "model named in dpsweep_model.json (its weights must match the sha256 recorded there), "
            "apply the adapters with `PeftModel.from_pretrained`, pool the last hidden state as "
            "recorded, apply head.safetensors and a sigmoid.",
            "", "Files: adapter_config.json and adapter_model.safetensors (LoRA, peft format), "
            "head.safetensors (weight, bias), tokenizer files, dpsweep_model.json (labels, thresholds, "
            "pooling, max_length, base model and its weights' sha256). No pickle."]
