"""Token ids as flat numpy arrays: a corpus tokenised once, shared by every trial of a sweep.

A split's token ids are one int32 array plus row offsets (report i is
`ids[offsets[i]:offsets[i + 1]]`), not a Python list per report: 205k MIMIC-CXR reports
take about 50 MB instead of gigabytes, pickle in one piece and, once in Ray's object
store, are read by every trial on a node without a copy. A `TokenizedCorpus` carries
what a trial needs besides the tokens (labels, masks, patient codes, names); it holds no
report text and no patient id (patients become codes 0..P-1).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

CHUNK_REPORTS = 4096  # reports per tokenizer call: bounds the tokenizer's own per-call memory


class TokenArrays(Sequence):
    """Token ids of many sequences, flat: `ids[offsets[i]:offsets[i + 1]]` is sequence i."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids):
            raise ValueError(f"offsets must run from 0 to len(ids) = {len(ids)}, got {offsets[:1]}..{offsets[-1:]}")
        self.ids, self.offsets = ids, offsets

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> TokenArrays:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.int32)
        for i, row in enumerate(rows):
            flat[offsets[i] : offsets[i + 1]] = row
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # one row as an int32 array view (no copy)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"TokenArrays rows are taken one at a time (int index), got {type(i).__name__}")
        i = int(i) + (len(self) if i < 0 else 0)
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.ids[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        """Tokens per sequence (int64)."""
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.offsets.nbytes)


def _fast_backend(tokenizer, max_length_tokens: int):
    """A private copy of the tokenizer's Rust backend set to truncate like `tokenizer(...)`, or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    fast = Tokenizer.from_str(backend.to_str())  # a copy: the caller's tokenizer keeps its settings
    fast.enable_truncation(max_length_tokens, strategy="longest_first",
                           direction=getattr(tokenizer, "truncation_side", "right"))
    fast.no_padding()
    return fast


@contextlib.contextmanager
def _rust_threads(on: bool) -> Iterator[None]:
    """Let the Rust tokenizer use every core while a large corpus is tokenised.

    `quiet_libraries` turns its thread pool off (TOKENIZERS_PARALLELISM=false) so a process
    forked later never inherits it mid-flight; that halves the tokenising speed at full size.
    The variable is read on every call and set again afterwards, so forks see it off.
    """
    if not on:
        yield
        return
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved


def tokenize_texts(texts: Sequence[str], tokenizer, *, max_length_tokens: int,
                   chunk_size: int = CHUNK_REPORTS) -> TokenArrays:
    """Token ids of `texts` as `tokenizer(texts, truncation=True, max_length=...)` gives them.

    Fast tokenizers are called on chunks through their Rust backend (both cores, no
    offsets); each chunk's ids become one int32 array at once, so the peak stays near the
    size of the result. Other tokenizers (and tokenizer-like featurisers) are called per chunk.
    """
    fast = _fast_backend(tokenizer, max_length_tokens)
    encode_batch = getattr(fast, "encode_batch_fast", None) or getattr(fast, "encode_batch", None)
    flats, lengths = [], []
    with _rust_threads(fast is not None and len(texts) >= chunk_size):
        for start in range(0, len(texts), chunk_size):
            chunk = list(texts[start : start + chunk_size])
            if fast is not None:
                rows = [e.ids for e in encode_batch(chunk, add_special_tokens=True)]
            else:
                rows = tokenizer(chunk, truncation=True, max_length=max_length_tokens)["input_ids"]
            sizes = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            flats.append(np.fromiter(chain.from_iterable(rows), dtype=np.int32, count=int(sizes.sum())))
            lengths.append(sizes)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return TokenArrays(np.concatenate(flats) if flats else np.zeros(0, dtype=np.int32), offsets)


def tokenizer_key(tokenizer) -> str:
    """A fingerprint of a tokenizer's vocabulary and rules: ids made by another one differ."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # truncation and padding are per-call settings the tokenizer's own call changes
        rules = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(rules, sort_keys=True)
    else:
        text = repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{type(tokenizer).__name__}\n{text}".encode()).hexdigest()[:16]


@dataclass
class TokenizedSplit:
    """One split of a `TokenizedCorpus`: token ids, labels and mask, patient codes (no ids)."""

    tokens: TokenArrays
    labels: np.ndarray
    mask: np.ndarray
    groups: np.ndarray  # int32 code of each report's patient (or study); equal codes = same patient
    tokenizer_key: str
    max_length_tokens: int

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def texts(self):
        raise AttributeError("a tokenised split holds no report text (only token ids); "
                             "read the corpus with dpsweep.data.load_corpus for the texts")


@dataclass
class TokenizedCorpus:
    """A corpus with its report texts replaced by token ids: what a trial reads instead of the files."""

    name: str
    format: str
    label_names: tuple[str, ...]
    train: TokenizedSplit
    val: TokenizedSplit
    test: TokenizedSplit | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    groups_are_patients: bool = False
    seconds: float = 0.0  # how long tokenising took

    def splits(self) -> dict[str, TokenizedSplit]:
        out = {"train": self.train, "val": self.val}
        if self.test is not None:
            out["test"] = self.test
        return out

    @property
    def n_reports(self) -> int:
        return sum(len(s) for s in self.splits().values())

    @property
    def nbytes(self) -> int:
        return sum(s.tokens.nbytes + s.labels.nbytes + s.mask.nbytes + s.groups.nbytes for s in self.splits().values())


def _group_codes(splits: dict[str, object]) -> dict[str, np.ndarray]:
    """Patient ids -> int32 codes, consistent across splits (the ids themselves are dropped)."""
    codes: dict[str, int] = {}
    return {name: np.fromiter((codes.setdefault(g, len(codes)) for g in split.groups), dtype=np.int32,
                              count=len(split.groups)) for name, split in splits.items()}


def tokenize_corpus(corpus, tokenizer, *, max_length_tokens: int) -> TokenizedCorpus:
    """Tokenise every split of a `dpsweep.data.Corpus` once (see `tokenize_texts`)."""
    import time

    t0 = time.perf_counter()
    key = tokenizer_key(tokenizer)
    groups = _group_codes(corpus.splits())
    splits = {name: TokenizedSplit(tokenize_texts(split.texts, tokenizer, max_length_tokens=max_length_tokens),
                                   labels=split.labels, mask=split.mask, groups=groups[name], tokenizer_key=key,
                                   max_length_tokens=max_length_tokens)
              for name, split in corpus.splits().items()}
    return TokenizedCorpus(name=corpus.name, format=corpus.format, label_names=tuple(corpus.label_names),
                           train=splits["train"], val=splits["val"], test=splits.get("test"),
                           skipped=dict(corpus.skipped), groups_are_patients=corpus.groups_are_patients,
                           seconds=time.perf_counter() - t0)


def check_tokens_fit(split: TokenizedSplit, tokenizer, *, max_length_tokens: int) -> None:
    """A pre-tokenised split must come from this tokenizer at this max length."""
    if split.max_length_tokens != max_length_tokens:
        raise ValueError(f"the pre-tokenised corpus was cut at max_length {split.max_length_tokens} but this trial "
                         f"uses max_length {max_length_tokens}; tokenise the corpus again with this max_length")
    if split.tokenizer_key != tokenizer_key(tokenizer):
        raise ValueError("the pre-tokenised corpus was made by another tokenizer than this trial's model uses; "
                         "tokenise the corpus again with this model's tokenizer")
