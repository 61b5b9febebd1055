"""The frozen-prefix cache must not change what the model computes: same logits, same
per-sample gradients (so DP-SGD and its accounting are unchanged), faster steps.

The states are stored in fp16, so "same" means within fp16 rounding of the states
(relative 2**-11 ≈ 5e-4 per number): logits within LOGITS_TOL, per-sample gradients within
GRAD_TOL of the full fp32 forward, about ten times the largest gaps measured on these tiny
models (logits 2.7e-5; per-sample gradients 2e-3 absolute, on entries up to 10.5).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from dpsweep.model import LoraSettings, ModelSpec
from dpsweep.model.classifier import build_classifier
from tests.conftest import tiny_backbone

LOGITS_TOL = dict(rtol=1e-3, atol=3e-4)
GRAD_TOL = dict(rtol=1e-2, atol=2e-2)


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
    torch.testing.assert_close(cached(ids, mask), plain(ids, mask), **LOGITS_TOL)


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
        torch.testing.assert_close(grads[1][name], grads[0][name], **GRAD_TOL)


def test_uncached_rows_run_every_layer():
    ids, mask, sequences = _batch()
    plain = _model()
    cached = copy.deepcopy(plain)
    cached.enable_prefix_cache(sequences[:2], pad_id=0)  # rows 2.. are not cached
    torch.testing.assert_close(cached(ids, mask), plain(ids, mask), **LOGITS_TOL)


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
    assert [len(s) for s in second.prefix_cache.stores] == [3, 3]  # the shared 3, then the 3 it lacked
    torch.testing.assert_close(second(ids, mask), plain(ids, mask), **LOGITS_TOL)


def test_shared_states_of_another_depth_are_not_used():
    """States taken at another depth (another lora_layers) are another function of the tokens:
    a model must recompute its own, not reuse them."""
    ids, mask, sequences = _batch()
    one = _model(top_layers=1)
    one.enable_prefix_cache(sequences, pad_id=0)
    states = one.prefix_cache.states
    states.depth += 1  # as if taken one layer deeper
    plain = _model(top_layers=1)
    reused = copy.deepcopy(plain)
    assert reused.enable_prefix_cache(sequences, pad_id=0, states=states) == ""
    assert states not in reused.prefix_cache.stores and len(reused.prefix_cache) == len(sequences)
    torch.testing.assert_close(reused(ids, mask), plain(ids, mask), **LOGITS_TOL)


def test_states_pickle_compactly_and_a_mapped_store_as_its_path(tmp_path):
    """In memory: one fp16 array (no per-report copies of a batch); memory-mapped: only the path
    crosses processes, and the mapped states equal the in-memory ones."""
    import pickle

    ids, mask, sequences = _batch()
    plain = _model()
    in_memory, mapped = copy.deepcopy(plain), copy.deepcopy(plain)
    assert in_memory.enable_prefix_cache(sequences, pad_id=0) == ""
    states = in_memory.prefix_cache.states
    assert states.data.dtype == np.float16 and states.path is None
    assert len(pickle.dumps(states)) < states.data.nbytes + 100_000
    assert mapped.enable_prefix_cache(sequences, pad_id=0, max_bytes=10, folder=str(tmp_path)) == ""
    on_disk = mapped.prefix_cache.states
    assert on_disk.path and oct(os.stat(on_disk.path).st_mode & 0o777) == "0o600"
    assert len(pickle.dumps(on_disk)) < 10_000
    np.testing.assert_array_equal(np.asarray(pickle.loads(pickle.dumps(on_disk)).data), states.data)
    torch.testing.assert_close(mapped(ids, mask), plain(ids, mask), **LOGITS_TOL)


def test_over_budget_without_a_folder_is_refused_with_the_reason():
    _, _, sequences = _batch()
    why = _model().enable_prefix_cache(sequences, pad_id=0, max_bytes=10)
    assert "fp16" in why and "in-memory budget" in why and "memory-map" in why


def test_fp16_cache_gap_is_small_but_measured():
    """The tolerance above is not vacuous: the fp16 path differs from fp32 (else this is not fp16)."""
    ids, mask, sequences = _batch()
    plain = _model()
    cached = copy.deepcopy(plain)
    cached.enable_prefix_cache(sequences, pad_id=0)
    gap = (cached(ids, mask) - plain(ids, mask)).abs().max().item()
    assert 0 < gap < LOGITS_TOL["atol"]
