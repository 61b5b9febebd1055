"""Shared fixtures: tiny models built from config, tiny synthetic corpora."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
CT_CLIP_TEXT = SHARED / "datasets" / "ct-clip-text"

TINY_VOCAB = 30522  # the embedded MiniLM tokenizer's vocabulary, so its tokenizer fits


def tiny_config(arch: str, *, dropout: float = 0.1):
    """A 2-layer, 32-wide model config of the given architecture."""
    from transformers import AlbertConfig, BertConfig, LlamaConfig, RobertaConfig

    common = dict(vocab_size=TINY_VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=256)
    if arch in ("bert", "roberta", "albert"):
        common.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if arch == "bert":
        return BertConfig(**common)
    if arch == "roberta":
        return RobertaConfig(**common, pad_token_id=0)
    if arch == "albert":
        return AlbertConfig(**common, embedding_size=16)
    if arch == "llama":
        return LlamaConfig(**common, num_key_value_heads=2, pad_token_id=0)
    raise ValueError(arch)


def tiny_backbone(arch: str, seed: int = 0, *, dropout: float = 0.1):
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    return AutoModel.from_config(tiny_config(arch, dropout=dropout))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny BERT with the embedded MiniLM tokenizer: loads like any user folder."""
    from dpsweep.model.loading import load_tokenizer, resolve_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_backbone("bert").save_pretrained(folder)
    load_tokenizer(resolve_model_path("default")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def synth_mimic(tmp_path_factory) -> Path:
    from dpsweep.data import write_synthetic

    return write_synthetic("mimic-cxr", tmp_path_factory.mktemp("synth") / "mimic", n=300, seed=0)


@pytest.fixture(autouse=True)
def _ray_start_needs_the_ray_marker(request, monkeypatch):
    """Keep the `ray` marker honest: an unmarked test that calls ray.init fails, naming the fix.

    `make test-fast` deselects `ray` tests on the promise that the rest start no Ray runtime.
    (A `ray start` in a child process is not caught here; mark such tests by hand.)
    """
    if request.node.get_closest_marker("ray") is not None:
        return
    import ray

    def refuse(*_args, **_kwargs):
        raise RuntimeError(f"{request.node.nodeid} starts Ray but is not marked ray; "
                           "add @pytest.mark.ray (or a module pytestmark) so `make test-fast` deselects it")

    monkeypatch.setattr(ray, "init", refuse)
