"""A sweep's tokenised corpus in Ray's object store, read by every trial and worker.

Why the object store rather than `.npy` files in the run folder: it works the same on one
node and on many. Ray copies the object to a node once, the first time a trial there asks
for it; every trial and Ray Train worker on that node then maps the same shared-memory
pages (numpy arrays come back zero-copy, read-only). A memory-mapped file would need the
run folder on a shared POSIX mount on every node, which s3:// and gs:// runs dirs are not.
Token ids also stay off disk: they are the report text in another alphabet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dpsweep.train.tokens import TokenizedCorpus


@dataclass(frozen=True)
class SharedCorpus:
    """Where a sweep's corpus lives in the object store (a handle, cheap to pass around).

    `tokens_ref`: the `TokenizedCorpus` for the sweep's model and max_length, what trials
    normally read. `texts_ref`: the read corpus with its texts, kept only when some trial may
    tokenise otherwise (a searched model, max_length or method, or method linear, whose
    vocabulary each trial builds from public data); those trials still never read the files.
    A plain ObjectRef handed to `tune.with_parameters` would be resolved before the trial sees
    it; this wrapper keeps the references, so a multi-worker trial can pass them on to its
    Ray Train workers without putting the arrays in the object store again.
    """

    tokens_ref: Any  # ray.ObjectRef of the TokenizedCorpus
    texts_ref: Any | None  # ray.ObjectRef of the read Corpus, or None
    model: str
    max_length_tokens: int
    n_reports: int
    nbytes: int

    def fits(self, config) -> str:
        """Why `config` cannot use the shared tokens ("" when it can)."""
        if getattr(config, "method", "lora") == "linear":
            return "method linear builds its vocabulary per trial"
        if config.model != self.model:
            return f"model {config.model} is not the sweep's {self.model}"
        if config.max_length != self.max_length_tokens:
            return f"max_length {config.max_length} is not the sweep's {self.max_length_tokens}"
        return ""

    def get(self, config=None, log=None):
        """The tokenised corpus, or the read texts for a trial whose config the tokens do not fit."""
        import ray

        t0 = time.perf_counter()
        why_not = self.fits(config) if config is not None else ""
        if why_not and self.texts_ref is None:
            raise ValueError(f"the sweep shared tokens only, but this trial cannot use them ({why_not}); "
                             "a sweep keeps the texts when the search space varies model, max_length or method")
        corpus = ray.get(self.texts_ref if why_not else self.tokens_ref)
        if log is not None:
            what = (f"read corpus ({self.n_reports} reports; tokenising them here: {why_not})" if why_not else
                    f"tokenized corpus ({self.n_reports} reports, {self.nbytes / 1e6:.0f} MB, "
                    f"object {self.tokens_ref.hex()[:16]})")
            log(f"reusing the sweep's {what} in {time.perf_counter() - t0:.2f} s; the corpus is not read again")
        return corpus


def share_corpus(tokens: TokenizedCorpus, *, model: str, texts=None) -> SharedCorpus:
    """Put the tokenised corpus (and, when given, the read corpus) in Ray's object store once."""
    import ray

    return SharedCorpus(tokens_ref=ray.put(tokens), texts_ref=ray.put(texts) if texts is not None else None,
                        model=model, max_length_tokens=tokens.train.max_length_tokens, n_reports=tokens.n_reports,
                        nbytes=tokens.nbytes)


def tokenize_and_share(config, corpus, *, log, keep_texts: bool = False) -> SharedCorpus:
    """Tokenise a read corpus once for a whole sweep, put it in the object store, and say so.

    `config`: the sweep's base TrialConfig. `keep_texts`: also share the read corpus, for
    trials the tokens do not fit (see `SharedCorpus`).
    """
    from dpsweep.model.loading import load_tokenizer, resolve_model_path
    from dpsweep.train.tokens import tokenize_corpus

    tokenizer = load_tokenizer(resolve_model_path(config.model))
    tokens = tokenize_corpus(corpus, tokenizer, max_length_tokens=config.max_length)
    shared = share_corpus(tokens, model=config.model, texts=corpus if keep_texts else None)
    log(f"tokenized once: {tokens.n_reports} reports in {tokens.seconds:.1f} s (cache at Ray object store, "
        f"object {shared.tokens_ref.hex()[:16]}, {tokens.nbytes / 1e6:.0f} MB"
        f"{'; the texts too, for trials of another model, max_length or method' if keep_texts else ''}; "
        "trials read it, never the corpus)")
    return shared
