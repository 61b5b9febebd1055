"""One contract every reader keeps, run against all registered formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpsweep.data import FORMATS, Corpus, DataOptions, load_corpus, summarize


def test_every_registered_format_is_covered() -> None:
    assert set(FORMATS) == {"mimic-cxr", "ct-rate", "csv"}


@pytest.mark.parametrize("fmt", ["mimic-cxr", "ct-rate", "csv"])
def test_reader_contract(fmt: str, tmp_path, make_corpus) -> None:
    root = make_corpus(fmt, tmp_path / "corpus")
    corpus = load_corpus(fmt, root, DataOptions(seed=5))
    assert isinstance(corpus, Corpus)
    assert corpus.format == fmt
    names = corpus.label_names
    assert isinstance(names, tuple) and names and len(set(names)) == len(names)
    assert corpus.n_labels == len(names)
    assert len(corpus.train) > 0 and len(corpus.val) > 0
    for split in corpus.splits().values():
        n = len(split)
        assert split.labels.dtype == np.float32 and split.labels.shape == (n, len(names))
        assert split.mask.dtype == np.bool_ and split.mask.shape == (n, len(names))
        assert set(np.unique(split.labels)) <= {0.0, 1.0}
        assert not split.labels[~split.mask].any(), "unknown labels are stored as 0"
        assert all(isinstance(t, str) and t.strip() for t in split.texts)
        assert all(isinstance(g, str) and g for g in split.groups)
        assert len(split.groups) == n
    splits = corpus.splits()
    for a in splits:
        for b in splits:
            if a < b:
                assert not set(splits[a].groups) & set(splits[b].groups), (a, b)

    again = load_corpus(fmt, root, DataOptions(seed=5))
    for name, split in corpus.splits().items():
        other = again.splits()[name]
        assert split.texts == other.texts and split.groups == other.groups
        np.testing.assert_array_equal(split.labels, other.labels)
        np.testing.assert_array_equal(split.mask, other.mask)

    summary = json.dumps(summarize(corpus))
    for split in corpus.splits().values():
        for text in split.texts[:5]:
            assert text not in summary
    texts = [t for s in corpus.splits().values() for t in s.texts]
    assert len(texts) == sum(len(s) for s in corpus.splits().values())
