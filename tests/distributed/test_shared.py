"""A sweep's shared corpus: tokens for the trials they fit, the read texts for the others."""

from __future__ import annotations

import pytest

from dpsweep.distributed.shared import SharedCorpus, share_corpus
from dpsweep.model.loading import load_tokenizer
from dpsweep.train.loop import load_trial_corpus
from dpsweep.train.tokens import TokenizedCorpus, tokenize_corpus
from tests.distributed.conftest import quiet


def test_what_the_shared_tokens_fit(dp_config):
    shared = SharedCorpus(tokens_ref=None, texts_ref=None, model=dp_config.model, max_length_tokens=48,
                          n_reports=1, nbytes=1)
    assert shared.fits(dp_config) == ""
    assert "max_length 32" in shared.fits(dp_config.override(max_length=32))
    assert "model" in shared.fits(dp_config.override(model="default"))


@pytest.mark.ray
def test_trials_get_tokens_or_texts_and_never_the_files(local_ray, dp_config, tiny_model_dir):
    corpus = load_trial_corpus(dp_config)
    tokens = tokenize_corpus(corpus, load_tokenizer(tiny_model_dir), max_length_tokens=dp_config.max_length)
    shared = share_corpus(tokens, model=dp_config.model, texts=corpus)
    messages: list[str] = []
    assert isinstance(shared.get(dp_config, log=messages.append), TokenizedCorpus)
    other = shared.get(dp_config.override(max_length=32), log=messages.append)
    assert other.train.texts == corpus.train.texts  # the texts, from the object store
    assert "tokenized corpus" in messages[0] and "tokenising them here: max_length 32" in messages[1]
    tokens_only = share_corpus(tokens, model=dp_config.model)
    with pytest.raises(ValueError, match="shared tokens only"):
        tokens_only.get(dp_config.override(max_length=32), log=quiet)


def test_a_trial_takes_the_shared_frozen_states_of_its_own_depth_only(dp_config, tmp_path):
    """SharedPrefix picks the share of the trial's depth (lora_layers k: n - k; head: n); another
    model, a depth the sweep did not compute, or a mapped file this node cannot see: none."""
    from dpsweep.distributed.shared import PrefixShare, SharedPrefix

    mapped = tmp_path / "prefix-states.f16"
    mapped.write_bytes(b"")
    shares = (PrefixShare(depth=1, ref=None, paths=(), n_reports=3, nbytes=1, serves=("lora (lora_layers=1)",)),
              PrefixShare(depth=2, ref=None, paths=(str(mapped),), n_reports=3, nbytes=1, serves=("head",)))
    prefix = SharedPrefix(model=dp_config.model, num_layers=2, shares=shares)
    lora = dp_config.override(lora_layers=1)
    assert prefix.share_for(lora) == (shares[0], "")
    assert prefix.share_for(dp_config.override(method="head")) == (shares[1], "")
    assert prefix.share_for(dp_config.override(method="bitfit", lora_layers=1)) == (shares[0], "")
    assert prefix.share_for(dp_config)[1] == "the trial caches no frozen layers"  # LoRA on every layer
    assert "is not the sweep's" in prefix.share_for(lora.override(model="default"))[1]
    assert prefix.share_for(lora.override(prefix_cache=False))[1] == "the trial caches no frozen layers"
    assert "no states of depth 1" in SharedPrefix(model=dp_config.model, num_layers=2,
                                                  shares=shares[1:]).share_for(lora)[1]
    mapped.unlink()  # as on a node that cannot see the runs dir: computed there, never a crash
    assert "not visible on this node" in prefix.share_for(dp_config.override(method="head"))[1]
