"""The frozen-prefix cache must not change what the model computes: same logits, same
per-sample gradients (so DP-SGD and its accounting are unchanged), faster steps."""

from __future__ import annotations

import copy

import pytest
import torch

from dpsweep.model import LoraSettings, ModelSpec
from dpsweep.model.classifier import build_classifier
from tests.conftest import tiny_backbone


def _model(arch: str = "bert", *, top_layers: int | None = 1, dropout: float = 0.0):
    spec = ModelSpec(lora=LoraSettings(rank=4, top_layers=top_layers), backbone_dropout=dropout > 0)
    torch.manual_seed(0)
    return build_classifier(tiny_backbone(arch, dropout=dropout), num_labels=3, spec=spec)


def _batch(n: int = 6, width: int = 12):
    gen = torch.Generator().manual_seed(1)
    lengths = [width, width - 3, 5, width, 7, 4][:n]
    ids = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, length in enumerate(lengths):
        ids[i, :length] = torch.randint(5, 1000, (length,), generator=gen)
        mask[i, :length] = 1
    sequences = [ids[i, : lengths[i]].tolist() for i in range(n)]
    return ids, mask, sequences


@pytest.mark.parametrize("arch", ["bert", "roberta", "llama"])
def test_cached_logits_equal_full_forward(arch):
    ids, mask, sequences = _batch()
    plain = _model(arch)
    cached = copy.deepcopy(plain)
    assert cached.enable_prefix_cache(sequences, pad_id=0) == ""
    assert cached.prefix_cache.first_adapted == 1
    torch.testing.assert_close(cached(ids, mask), plain(ids, mask), rtol=1e-5, atol=1e-5)


def test_cached_per_sample_gradients_equal():
    from opacus import GradSampleModule

    ids, mask, sequences = _batch()
    plain = _model()
    cached = copy.deepcopy(plain)
    cached.enable_prefix_cache(sequences, pad_id=0)
    grads = []
    for model in (plain, cached):
        gsm = GradSampleModule(model)
        gsm(ids, mask).sum().backward()
        grads.append({n: p.grad_sample.clone() for n, p in gsm.named_parameters() if p.requires_grad})
        gsm._close()
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6)


def test_uncached_rows_run_every_layer():
    ids, mask, sequences = _batch()
    plain = _model()
    cached = copy.deepcopy(plain)
    cached.enable_prefix_cache(sequences[:2], pad_id=0)  # rows 2.. are not cached
    torch.testing.assert_close(cached(ids, mask), plain(ids, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case, why", [
    (dict(top_layers=None), "lowest layer"),
    (dict(dropout=0.1), "dropout"),
])
def test_cache_refused_when_prefix_is_not_fixed(case, why):
    _, _, sequences = _batch()
    assert why in _model(**case).enable_prefix_cache(sequences, pad_id=0)


def test_cache_refused_over_memory_limit():
    _, _, sequences = _batch()
    assert "GiB" in _model().enable_prefix_cache(sequences, pad_id=0, max_bytes=10)


def test_shared_states_are_reused_and_missing_ones_computed():
    ids, mask, sequences = _batch()
    plain = _model()
    first = copy.deepcopy(plain)
    first.enable_prefix_cache(sequences[:3], pad_id=0)
    second = copy.deepcopy(plain)
    assert second.enable_prefix_cache(sequences, pad_id=0, states=first.prefix_cache.states) == ""
    assert len(second.prefix_cache.states) == len(sequences)
    torch.testing.assert_close(second(ids, mask), plain(ids, mask), rtol=1e-5, atol=1e-5)


def test_cached_states_own_their_memory():
    """Each state must not be a view of its batch: pickling a view (Ray's object store)
    would copy the whole batch once per report."""
    import pickle

    _, _, sequences = _batch()
    model = _model()
    model.enable_prefix_cache(sequences, pad_id=0)
    states = model.prefix_cache.states
    one = next(iter(states.values()))
    assert one.untyped_storage().nbytes() == one.numel() * one.element_size()
    assert len(pickle.dumps(states)) < 2 * sum(s.numel() * 4 for s in states.values()) + 100_000
