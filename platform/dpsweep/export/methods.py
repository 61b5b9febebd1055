"""The parts of a saved model that only some methods have (see dpsweep.train.methods).

- bitfit: the trained bias terms of the backbone, `bias_terms.safetensors` (by parameter name);
- linear: the public TF-IDF features, `linear_features.safetensors` (IDF, mean, projection)
  and `vocabulary.json` (the public n-grams in id order). No base transformer.

Safetensors and JSON only, like the rest of the folder; none of it holds a private statistic.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from dpsweep.errors import ModelError

BIAS_FILE = "bias_terms.safetensors"
LINEAR_FILE = "linear_features.safetensors"
VOCABULARY_FILE = "vocabulary.json"
LINEAR_BASE = "none (linear model on public TF-IDF features)"


def write_bias_terms(folder: Path, backbone: nn.Module) -> None:
    from safetensors.torch import save_file

    state = {name: p.detach().cpu().clone().contiguous() for name, p in backbone.named_parameters()
             if p.requires_grad}
    save_file(state, str(folder / BIAS_FILE))


def load_bias_terms(backbone: nn.Module, folder: Path) -> None:
    from safetensors.torch import load_file

    path = folder / BIAS_FILE
    if not path.is_file():
        raise ModelError(f"{folder} lacks {BIAS_FILE}; re-save the model")
    params = dict(backbone.named_parameters())
    state = load_file(str(path))
    unknown = sorted(set(state) - set(params))
    if unknown or any(params[n].shape != t.shape for n, t in state.items()):
        raise ModelError(f"{path} does not fit the base model ({(unknown or ['a shape'])[0]}); pass the base "
                         "model it was trained with")
    for name, value in state.items():
        params[name].data.copy_(value)


def write_linear_features(folder: Path, model, tokenizer) -> None:
    from safetensors.torch import save_file

    tensors = {"idf": model.idf, "mean": model.mean}
    if model.projection is not None:
        tensors["projection"] = model.projection
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / LINEAR_FILE))
    (folder / VOCABULARY_FILE).write_text(json.dumps(tokenizer.vocabulary, ensure_ascii=False), encoding="utf-8")


def load_linear_model(folder: Path, *, num_labels: int):
    """(TfidfLinearClassifier, NgramTokenizer) from a saved linear model's folder."""
    from safetensors.torch import load_file

    from dpsweep.model.linear import build_linear_classifier

    for name in (LINEAR_FILE, VOCABULARY_FILE):
        if not (folder / name).is_file():
            raise ModelError(f"{folder} lacks {name}; re-save the model")
    tensors = load_file(str(folder / LINEAR_FILE))
    try:
        vocabulary = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{folder / VOCABULARY_FILE} is not valid JSON; re-save the model") from None
    if not isinstance(vocabulary, list) or len(vocabulary) != tensors["idf"].shape[0]:
        raise ModelError(f"{folder / VOCABULARY_FILE} does not match {LINEAR_FILE}; re-save the model")
    features = {"vocabulary": vocabulary, "idf": tensors["idf"], "mean": tensors["mean"],
                "projection": tensors.get("projection")}
    return build_linear_classifier(features, num_labels=num_labels, head_bias_init=0.0)
