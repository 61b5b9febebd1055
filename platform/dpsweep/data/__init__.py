"""Report corpora: readers for MIMIC-CXR, CT-RATE and labelled CSV folders, and a
synthetic corpus writer.

    corpus = load_corpus("mimic-cxr", "/data/mimic-cxr/2.0.0", DataOptions(sections="impression"))
    corpus.train.texts, corpus.train.labels, corpus.train.mask, corpus.train.groups

numpy and the standard library only: no torch, no pandas. Errors are one-line
`dpsweep.errors.DataError`s that name the file, the column and the fix, and never
contain report text.
"""

from __future__ import annotations

from dpsweep.data.formats import FORMATS, load_corpus
from dpsweep.data.labels import CHEXPERT_LABELS, CT_RATE_LABELS
from dpsweep.data.registry import FormatRegistry, Reader
from dpsweep.data.summary import summarize
from dpsweep.data.synthetic import write_synthetic
from dpsweep.data.types import Corpus, DataOptions, Sections, Split, UncertainPolicy

__all__ = [
    "CHEXPERT_LABELS",
    "CT_RATE_LABELS",
    "FORMATS",
    "Corpus",
    "DataOptions",
    "FormatRegistry",
    "Reader",
    "Sections",
    "Split",
    "UncertainPolicy",
    "load_corpus",
    "summarize",
    "write_synthetic",
]
