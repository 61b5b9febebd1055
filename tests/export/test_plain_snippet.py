"""docs/loading-a-model.md: its code block, run as written, matches predict_probabilities."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dpsweep.data import load_corpus
from dpsweep.export import load_model, predict_probabilities
from tests.export.conftest import perturbed_classifier, save_example

DOC = Path(__file__).resolve().parents[2] / "docs" / "loading-a-model.md"
PLACEHOLDERS = ('model_dir = Path("path/to/saved-model")', 'base_dir = "path/to/base-model"',
                'texts = ["Heart size is normal. No pleural effusion."]')


def snippet() -> str:
    """The one python code block of the document."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 1, "the document should hold exactly one python block"
    return blocks[0]


def run_snippet(model_dir: Path, base_dir: Path, texts: list[str]) -> dict:
    code = snippet()
    for line in PLACEHOLDERS:
        assert code.count(line) == 1, line
    code = (code.replace(PLACEHOLDERS[0], f"model_dir = Path({str(model_dir)!r})")
                .replace(PLACEHOLDERS[1], f"base_dir = {str(base_dir)!r}")
                .replace(PLACEHOLDERS[2], f"texts = {texts!r}"))
    assert not re.search(r"^\s*(import|from)\s+dpsweep", code, flags=re.MULTILINE)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - the documented code, run as written
    return namespace


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_plain_snippet_matches_predict_probabilities(pooling, tiny_model_dir, synth_mimic, tmp_path):
    model, tokenizer = perturbed_classifier(tiny_model_dir, pooling=pooling)
    folder = save_example(model, tokenizer, tiny_model_dir, tmp_path / "model")
    texts = list(load_corpus("mimic-cxr", synth_mimic).test.texts)
    loaded = load_model(folder)
    expected = predict_probabilities(loaded, texts, batch_size=4)
    namespace = run_snippet(folder, tiny_model_dir, texts)
    assert namespace["probs"].shape == expected.shape
    assert np.abs(namespace["probs"] - expected).max() <= 1e-5
    assert np.array_equal(namespace["predicted"], namespace["probs"] >= loaded.thresholds)


def test_readme_shows_the_same_tested_snippet():
    """README's ten lines are the block this file runs (one copy to keep right)."""
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    doc = DOC.read_text(encoding="utf-8")
    block = doc[doc.index("```python"): doc.index("```", doc.index("```python") + 9) + 3]
    assert block in readme
