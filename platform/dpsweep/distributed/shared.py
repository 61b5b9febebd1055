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
    """Where a `TokenizedCorpus` lives in the object store (a handle, cheap to pass around).

    A plain ObjectRef handed to `tune.with_parameters` would be resolved before the trial
    sees it; this wrapper keeps the reference, so a multi-worker trial can pass it on to
    its Ray Train workers without putting the arrays in the object store again.
    """

    ref: Any  # ray.ObjectRef of the TokenizedCorpus
    n_reports: int
    nbytes: int

    def get(self, log=None) -> TokenizedCorpus:
        import ray

        t0 = time.perf_counter()
        corpus = ray.get(self.ref)
        if log is not None:
            log(f"reusing the sweep's tokenized corpus ({self.n_reports} reports, {self.nbytes / 1e6:.0f} MB, "
                f"object {self.ref.hex()[:16]}) in {time.perf_counter() - t0:.2f} s; the corpus is not read again")
        return corpus


def share_corpus(tokens: TokenizedCorpus) -> SharedCorpus:
    """Put the tokenised corpus in Ray's object store once (call after `ray.init`)."""
    import ray

    return SharedCorpus(ref=ray.put(tokens), n_reports=tokens.n_reports, nbytes=tokens.nbytes)


def tokenize_and_share(config, corpus, *, log) -> SharedCorpus:
    """Tokenise a read corpus once for a whole sweep, put it in the object store, and say so.

    `config`: the sweep's base TrialConfig (model and max_length are fixed across its trials).
    """
    from dpsweep.model.loading import load_tokenizer, resolve_model_path
    from dpsweep.train.tokens import tokenize_corpus

    tokenizer = load_tokenizer(resolve_model_path(config.model))
    tokens = tokenize_corpus(corpus, tokenizer, max_length_tokens=config.max_length)
    shared = share_corpus(tokens)
    log(f"tokenized once: {tokens.n_reports} reports in {tokens.seconds:.1f} s (cache at Ray object store, "
        f"object {shared.ref.hex()[:16]}, {tokens.nbytes / 1e6:.0f} MB; trials read it, never the corpus)")
    return shared
