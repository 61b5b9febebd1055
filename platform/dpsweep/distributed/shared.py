"""A sweep's tokenised corpus and frozen-layer states in Ray's object store, read by every trial and worker.

Why the object store rather than `.npy` files in the run folder: it works the same on one
node and on many. Ray copies the object to a node once, the first time a trial there asks
for it; every trial and Ray Train worker on that node then maps the same shared-memory
pages (numpy arrays come back zero-copy, read-only). A memory-mapped file would need the
run folder on a shared POSIX mount on every node, which s3:// and gs:// runs dirs are not.
Token ids also stay off disk: they are the report text in another alphabet.
"""

from __future__ import annotations

import os
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

    tokens_ref: Any | None  # ray.ObjectRef of the TokenizedCorpus (None: texts only, for method linear)
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
        if not why_not and self.tokens_ref is None:
            why_not = "the tokens were not shared"
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


def share_for_ranks(config, corpus, *, log) -> SharedCorpus:
    """One trial's corpus, read by its caller, for its Ray Train ranks: no rank reads the files.

    Tokenised once here for a transformer method; the linear method tokenises with a vocabulary
    each rank builds from public data, so its ranks get the read corpus (texts) instead.
    """
    if getattr(config, "method", "lora") != "linear":
        return tokenize_and_share(config, corpus, log=log)
    import ray

    n = len(corpus.train) + len(corpus.val) + (len(corpus.test) if corpus.test is not None else 0)
    shared = SharedCorpus(tokens_ref=None, texts_ref=ray.put(corpus), model=config.model,
                          max_length_tokens=config.max_length, n_reports=n, nbytes=0)
    log(f"read once: {n} reports put in Ray's object store (object {shared.texts_ref.hex()[:16]}) for the ranks, "
        "which never read the corpus (method linear: each rank tokenises with its public vocabulary)")
    return shared


@dataclass(frozen=True)
class PrefixShare:
    """One depth of a sweep's frozen-layer states: `ref` holds its `PrefixStates` stores.

    `paths`: the memory-mapped files the stores read (empty: in memory, in the object store),
    `serves`: which methods' trials this depth is for (for the logs).
    """

    depth: int
    ref: Any  # ray.ObjectRef of list[PrefixStates]
    paths: tuple[str, ...]
    n_reports: int
    nbytes: int
    serves: tuple[str, ...]

    @classmethod
    def put(cls, states: list, *, serves: tuple[str, ...] = ()) -> PrefixShare:
        """Put one depth's stores in the object store once (a mapped store pickles as its path)."""
        import ray

        return cls(depth=states[0].depth, ref=ray.put(states), paths=tuple(s.path for s in states if s.path),
                   n_reports=sum(len(s) for s in states), nbytes=sum(s.data.nbytes for s in states), serves=serves)


@dataclass(frozen=True)
class SharedPrefix:
    """A sweep's frozen-layer states, computed once per depth some trial needs (a handle).

    Like `SharedCorpus`, a wrapper keeps the references unresolved through
    `tune.with_parameters`, so a multi-worker trial hands them to its ranks: Ray copies a
    store to a node once and every rank there maps it. Memory-mapped stores are used only
    where their file is visible (the node that wrote it, or a shared runs dir); elsewhere the
    trial computes its own states.
    """

    model: str
    num_layers: int
    shares: tuple[PrefixShare, ...]

    def share_for(self, config) -> tuple[PrefixShare | None, str]:
        """(the share `config`'s cache would read, "") or (None, why not)."""
        from dpsweep.train.methods import frozen_depth

        if config.model != self.model:
            return None, f"model {config.model} is not the sweep's {self.model}"
        depth = frozen_depth(config, num_layers=self.num_layers)
        if depth is None:
            return None, "the trial caches no frozen layers"
        share = next((s for s in self.shares if s.depth == depth), None)
        if share is None:
            return None, f"the sweep holds no states of depth {depth}"
        missing = [p for p in share.paths if not os.path.exists(p)]
        if missing:
            return None, (f"the memory-mapped states at {missing[0]} are not visible on this node (runs dir "
                          "not shared with the node that wrote them)")
        return share, ""

    def states_for(self, config, *, log=None, who: str = "this trial"):
        """The stores matching `config`'s depth (list of PrefixStates), or None: the trial computes its own."""
        import ray

        share, why_not = self.share_for(config)
        if share is None:
            if log is not None and config.method != "linear" and why_not != "the trial caches no frozen layers":
                log(f"{who} computes its own frozen-layer states: {why_not}")
            return None
        t0 = time.perf_counter()
        states = ray.get(share.ref)
        if log is not None:
            where = f"memory-mapped at {', '.join(share.paths)}" if share.paths else f"object {share.ref.hex()[:16]}"
            log(f"{who} reuses the sweep's frozen-layer states (depth {share.depth}, {share.n_reports} reports, "
                f"{where}) in {time.perf_counter() - t0:.2f} s")
        return states


@dataclass(frozen=True)
class SharedWarm:
    """A sweep's public warm start, computed once for trials of one `warm_start_key` (a handle).

    `ref` holds the trainable weights after the warm start (adapters and head: kilobytes);
    a trial whose settings give another key (it searches something the warm start reads)
    runs its own. Public data only: no ε, no private report.
    """

    key: str
    ref: Any  # ray.ObjectRef of dict[str, torch.Tensor]
    steps: int
    seconds: float

    @classmethod
    def put(cls, config, weights: dict, *, seconds: float) -> SharedWarm:
        import ray

        from dpsweep.train.methods import warm_start_key

        return cls(key=warm_start_key(config), ref=ray.put(weights), steps=config.public_warm_steps,
                   seconds=seconds)

    def weights_for(self, config, *, log=None, who: str = "this trial"):
        """The shared weights when `config` takes this very warm start, else None (it runs its own)."""
        import ray

        from dpsweep.train.methods import warm_start_key

        if warm_start_key(config) != self.key:
            if log is not None:
                log(f"{who} runs its own warm start: its settings differ from the sweep's shared one")
            return None
        return ray.get(self.ref)
