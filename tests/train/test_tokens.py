"""Token ids as flat arrays: the same ids as the tokenizer's own call, and the same trial."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpsweep.model.loading import load_tokenizer
from dpsweep.train import TrialConfig, run_trial
from dpsweep.train.batches import EncodedSplit, encode
from dpsweep.train.loop import load_trial_corpus
from dpsweep.train.tokens import TokenArrays, tokenize_corpus, tokenize_texts

TEXTS = ["Small left pleural effusion.", "", "No acute cardiopulmonary process. " * 40,
         "Héllo wörld, naïve café", "Lines and tubes are unchanged.\nStable cardiomegaly."]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


@pytest.mark.parametrize("max_length", [8, 48, 512])
def test_ids_equal_the_tokenizers_own_call(tokenizer, max_length):
    expected = tokenizer(TEXTS, truncation=True, max_length=max_length)["input_ids"]
    got = tokenize_texts(TEXTS, tokenizer, max_length_tokens=max_length, chunk_size=2)  # chunk edges inside
    assert [row.tolist() for row in got] == expected
    assert got.ids.dtype == np.int32 and got.lengths().tolist() == [len(r) for r in expected]


def test_rust_threads_only_while_tokenising(tokenizer, monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # what quiet_libraries sets
    many = TEXTS * 20
    got = tokenize_texts(many, tokenizer, max_length_tokens=48, chunk_size=16)  # on the Rust threads
    assert [row.tolist() for row in got] == tokenizer(many, truncation=True, max_length=48)["input_ids"]
    import os

    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"  # forks after it see the pool off again


def test_the_callers_tokenizer_keeps_its_settings(tokenizer):
    before = tokenizer.backend_tokenizer.to_str()
    tokenize_texts(TEXTS, tokenizer, max_length_tokens=8)
    assert tokenizer.backend_tokenizer.to_str() == before


def test_token_arrays_from_lists_and_encoded_split():
    rows = [[101, 5, 102], [101, 102], [101, 7, 8, 9, 102]]
    arrays = TokenArrays.from_lists(rows)
    assert len(arrays) == 3 and [r.tolist() for r in arrays] == rows and arrays[-1].tolist() == rows[-1]
    split = EncodedSplit(rows, targets=np.zeros((3, 2), np.float32), pad_id=0)
    ids, _ = split[2]
    assert ids.tolist() == rows[2] and str(ids.dtype) == "torch.int64" and split.lengths() == [3, 2, 5]


def test_tokenized_corpus_holds_no_text_and_codes_patients(synth_mimic, tiny_model_dir, tokenizer):
    corpus = load_trial_corpus(TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic)))
    tokens = tokenize_corpus(corpus, tokenizer, max_length_tokens=48)
    with pytest.raises(AttributeError, match="no report text"):
        _ = tokens.train.texts
    for name, split in corpus.splits().items():
        codes = tokens.splits()[name].groups
        same_patient = np.equal.outer(np.asarray(split.groups), np.asarray(split.groups))
        assert (np.equal.outer(codes, codes) == same_patient).all()
    with pytest.raises(ValueError, match="max_length 48 but this trial uses max_length 32"):
        encode(tokens.train, tokenizer, max_length_tokens=32)


def test_trial_on_the_tokenized_corpus_equals_the_trial_on_the_texts(synth_mimic, tiny_model_dir, tokenizer):
    config = TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                         max_length=48, batch_size=32, physical_batch_size=16, max_epochs=0.5, rank=2, lr=5e-3,
                         seed=0, accountant="rdp", epsilon=8.0, sigma=1.0, noise="reproducible")
    corpus = load_trial_corpus(config)
    tokens = tokenize_corpus(corpus, tokenizer, max_length_tokens=config.max_length)
    a = run_trial(config, corpus=corpus, log=lambda _m: None)
    b = run_trial(config, corpus=tokens, log=lambda _m: None)
    assert a.ledger == b.ledger and a.val.per_label_f1 == b.val.per_label_f1
    assert a.test.per_label_f1 == b.test.per_label_f1 and not math.isinf(b.ledger.epsilon)


class _Featuriser:
    """A tokenizer-like object that ignores truncation (as the linear method's n-gram vocabulary does)."""

    pad_token_id = 0

    def __call__(self, texts, **_ignored):
        return {"input_ids": [list(range(1, 2 + len(t))) for t in texts]}


def test_tokenizer_like_objects_that_do_not_truncate_keep_every_id():
    got = tokenize_texts(TEXTS, _Featuriser(), max_length_tokens=4, chunk_size=2)
    assert [len(row) for row in got] == [1 + len(t) for t in TEXTS] and got[2].tolist()[-1] == 1 + len(TEXTS[2])
