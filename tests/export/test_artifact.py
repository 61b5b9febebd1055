"""save_model / load_model: peft-format files, a fresh-process round trip, and refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dpsweep.data import CHEXPERT_LABELS, load_corpus
from dpsweep.errors import ModelError, UserInputError
from dpsweep.export import load_model, predict_probabilities
from dpsweep.export.artifact import ADAPTER_WEIGHTS, HEAD_FILE, METADATA_FILE, weights_sha256
from tests.export.conftest import (
    MAX_LENGTH,
    THRESHOLDS,
    perturbed_classifier,
    reference_probabilities,
    save_example,
)

REPO = Path(__file__).resolve().parents[2]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _texts(synth_mimic, n: int = 40) -> list[str]:
    corpus = load_corpus("mimic-cxr", synth_mimic)
    return list(corpus.train.texts[:n])


def test_saved_folder_holds_the_documented_files(saved_model):
    names = {p.name for p in saved_model.iterdir()}
    assert {"adapter_config.json", ADAPTER_WEIGHTS, HEAD_FILE, METADATA_FILE, "README.md",
            "tokenizer.json", "tokenizer_config.json"} <= names
    assert not [p for p in saved_model.parent.iterdir() if p.name.startswith(".")], "staging folder left behind"
    meta = json.loads((saved_model / METADATA_FILE).read_text())
    assert meta["label_names"] == list(CHEXPERT_LABELS)
    assert [meta["thresholds"][n] for n in CHEXPERT_LABELS] == THRESHOLDS
    assert meta["pooling"] == "mean" and meta["max_length"] == MAX_LENGTH
    assert meta["base_model"]["weights_sha256"] == weights_sha256(Path(meta["base_model"]["reference"]))
    assert meta["dpsweep_version"] and meta["git_commit"] == "abc123"


def test_adapters_load_with_plain_peft(saved_model, trained, tiny_model_dir):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel

    keys = set(load_file(str(saved_model / ADAPTER_WEIGHTS)))
    assert keys and all(k.startswith("base_model.model.") and "lora_" in k for k in keys)
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(tiny_model_dir)), str(saved_model)).eval()
    ids = torch.randint(5, 1000, (2, 9))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        plain = peft_model(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = trained[0].backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(plain, ours, atol=1e-6)


def test_round_trip_in_a_fresh_process(saved_model, trained, synth_mimic, tmp_path):
    texts = _texts(synth_mimic)
    expected = reference_probabilities(*trained, texts)
    assert expected.std() > 0.05  # LoRA B and head perturbed: outputs are not trivial
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = ("import json, sys, numpy as np\n"
              "from dpsweep.export import load_model, predict_probabilities\n"
              "texts = json.load(open(sys.argv[2]))\n"
              "probs = predict_probabilities(load_model(sys.argv[1]), texts, batch_size=8)\n"
              "np.save(sys.argv[3], probs, allow_pickle=False)\n")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'platform'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run([sys.executable, "-c", script, str(saved_model), str(tmp_path / "texts.json"),
                    str(tmp_path / "probs.npy")], check=True, env=env, capture_output=True, timeout=300)
    loaded = np.load(tmp_path / "probs.npy", allow_pickle=False)
    assert loaded.shape == (len(texts), len(CHEXPERT_LABELS))
    assert np.abs(loaded - expected).max() <= 1e-5


def test_progress_chunks_give_the_same_probabilities(saved_model, synth_mimic):
    loaded = load_model(saved_model)
    texts = _texts(synth_mimic, 50)
    calls: list[tuple[int, int]] = []
    chunked = predict_probabilities(loaded, texts, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    whole = predict_probabilities(loaded, texts, batch_size=4)
    assert np.abs(chunked - whole).max() <= 1e-6
    assert calls[-1] == (50, 50) and 5 <= len(calls) <= 13
    assert loaded.model.training is False
    assert predict_probabilities(loaded, []).shape == (0, len(CHEXPERT_LABELS))


@pytest.mark.parametrize("pooling", ["cls", "last"])
def test_other_poolings_round_trip(pooling, tiny_model_dir, tmp_path, synth_mimic):
    model, tokenizer = perturbed_classifier(tiny_model_dir, pooling=pooling)
    folder = save_example(model, tokenizer, tiny_model_dir, tmp_path / "m")
    texts = _texts(synth_mimic, 12)
    probs = predict_probabilities(load_model(folder), texts)
    assert np.abs(probs - reference_probabilities(model, tokenizer, texts)).max() <= 1e-5


def test_no_pickle_and_no_report_text(saved_model, synth_mimic):
    corpus = load_corpus("mimic-cxr", synth_mimic)
    sentences = {s.strip() for text in corpus.train.texts[:50] for s in text.split(".") if len(s.strip()) > 25}
    assert len(sentences) > 5
    for path in saved_model.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        assert path.suffix not in PICKLE_SUFFIXES, path.name
        assert not (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), f"{path.name} is a pickle"
        assert not data.startswith(b"PK\x03\x04"), f"{path.name} is a zip (torch.save)"
        text = data.decode("utf-8", errors="ignore")
        leaked = [s for s in sentences if s in text]
        assert not leaked, f"{path.name} holds report text"


def test_model_card(saved_model):
    readme = (saved_model / "README.md").read_text()
    _, front, body = readme.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "peft" and "differential-privacy" in meta["tags"]
    metrics = meta["model-index"][0]["results"]
    assert [r["dataset"]["split"] for r in metrics] == ["validation", "test"]
    assert {m["value"] for m in metrics[0]["metrics"]} >= {0.61, 0.66, 0.71}
    for needle in ("ε (per trial; excludes hyperparameter tuning) | 7.91", "| δ | 1e-05", "σ (noise multiplier) | 1.16",
                   "q (sampling rate) | 0.0909091", "| steps | 264", "| accountant | prv", "privacy unit",
                   "269 training, 14 validation and 17 test", "abc123", "hyperparameter tuning"):
        assert needle in body, needle


def test_non_private_card(trained, tiny_model_dir, tmp_path):
    from dpsweep.export import ModelCard
    from dpsweep.privacy import PrivacyLedger

    card = ModelCard(ledger=PrivacyLedger.non_private(delta=1e-5, sample_rate=0.1, steps=30).to_dict(),
                     dataset="mimic-cxr", n_train=10, n_val=5)
    folder = save_example(*trained, tiny_model_dir, tmp_path / "m", card=card)
    assert "without** differential privacy" in (folder / "README.md").read_text()
    assert json.loads((folder / METADATA_FILE).read_text())["privacy"]["epsilon"] == "inf"


def test_refuses_a_non_empty_target_unless_forced(trained, tiny_model_dir, tmp_path):
    folder = save_example(*trained, tiny_model_dir, tmp_path / "m")
    stamp = (folder / METADATA_FILE).stat().st_mtime_ns
    with pytest.raises(UserInputError, match="not empty") as err:
        save_example(*trained, tiny_model_dir, folder)
    assert "\n" not in str(err.value) and (folder / METADATA_FILE).stat().st_mtime_ns == stamp
    save_example(*trained, tiny_model_dir, folder, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # old copy and staging removed
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="holds no saved model"):
        save_example(*trained, tiny_model_dir, other, force=True)
    assert (other / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (save_example(*trained, tiny_model_dir, empty) / METADATA_FILE).is_file()


def test_a_failed_save_writes_nothing(trained, tiny_model_dir, tmp_path):
    class BrokenTokenizer:
        def save_pretrained(self, folder):
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_example(trained[0], BrokenTokenizer(), tiny_model_dir, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def _one_line_model_error(folder, match: str, **kwargs) -> None:
    with pytest.raises(ModelError, match=match) as err:
        load_model(folder, **kwargs)
    assert "\n" not in str(err.value)


def test_load_refusals(saved_model, tmp_path, tiny_model_dir):
    _one_line_model_error(tmp_path / "missing", "does not exist")
    (tmp_path / "plain").mkdir()
    _one_line_model_error(tmp_path / "plain", "not a dpsweep model folder")
    future = tmp_path / "future"
    shutil.copytree(saved_model, future)
    meta = json.loads((future / METADATA_FILE).read_text())
    (future / METADATA_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    _one_line_model_error(future, "format version 99")
    (future / METADATA_FILE).write_text("{not json")
    _one_line_model_error(future, "not valid JSON")
    other_base = tmp_path / "other-base"
    from tests.conftest import tiny_backbone

    tiny_backbone("bert", seed=1).save_pretrained(other_base)
    _one_line_model_error(saved_model, "differ from the ones this model was trained on", base_model=str(other_base))


def test_top_layer_adapters_with_the_prefix_cache_round_trip(tiny_model_dir, tmp_path, synth_mimic):
    import torch
    from safetensors.torch import load_file

    from dpsweep.model import LoraSettings, ModelSpec, load_classifier
    from dpsweep.train.batches import encode

    model, tokenizer = load_classifier(ModelSpec(name_or_path=str(tiny_model_dir), lora=LoraSettings(top_layers=1)),
                                       num_labels=len(CHEXPERT_LABELS))
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape) * 0.5)
    texts = _texts(synth_mimic, 12)
    expected = reference_probabilities(model.eval(), tokenizer, texts)
    corpus = load_corpus("mimic-cxr", synth_mimic)
    assert model.enable_prefix_cache(encode(corpus.train, tokenizer, max_length_tokens=MAX_LENGTH).input_ids,
                                     pad_id=tokenizer.pad_token_id) == ""
    folder = save_example(model, tokenizer, tiny_model_dir, tmp_path / "m")
    assert all(".layer.1." in key for key in load_file(str(folder / ADAPTER_WEIGHTS)))
    assert np.abs(predict_probabilities(load_model(folder), texts) - expected).max() <= 1e-5
