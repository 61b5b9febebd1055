"""Checkpoints are safetensors + JSON: no pickle is written or read, and the trial config is
checked before any tensor is loaded (no Ray needed: the files are written and read here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dpsweep.distributed.state import (
    CONFIG_FILE,
    OUTCOME_FILE,
    TENSORS_FILE,
    TRAINING_FILE,
    Outcome,
    RankSummary,
    read_saved,
    write_outcome,
    write_training,
)
from dpsweep.errors import ConfigError
from dpsweep.train.batches import encode
from dpsweep.train.loop import load_trial_corpus, make_trainer, trainer_ledger, trial_model
from dpsweep.train.plan import plan_steps

PICKLE_PROTOCOLS = b"\x02\x03\x04\x05"  # pickle protocol 2+ starts b"\x80" then its protocol number


def _trainer(config):
    corpus = load_trial_corpus(config)
    plan = plan_steps(config, n_train=len(corpus.train))
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    return make_trainer(model, train, config, plan), plan


@pytest.fixture(scope="module")
def config(dp_config):
    return dp_config.override(max_epochs=0.3)


@pytest.fixture(scope="module")
def trained(config):
    trainer, plan = _trainer(config)
    trainer.run()
    return trainer, plan


def _write(folder: Path, trainer, plan, config) -> dict:
    training = {**trainer.state_dict(), "rng": [{"torch": torch.get_rng_state(),
                                                  "noise": trainer.noise_generator.get_state()}],
                "train_seconds": 1.5, "first_started_at": 1e9}
    write_training(folder, config=config, ledger=trainer_ledger(trainer, config, plan), training=training)
    return training


def _assert_no_pickle(folder: Path) -> None:
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pth"))], names
    for path in folder.iterdir():
        head = path.read_bytes()[:4]
        assert not head.startswith(b"PK\x03\x04"), path  # torch.save's zip format
        if path.name.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), framework="pt"):  # a safetensors header, not a pickle
                pass
        else:
            assert not (head[:1] == b"\x80" and head[1:2] and head[1:2] in PICKLE_PROTOCOLS), path
            json.loads(path.read_text())  # every other file is JSON


def test_training_checkpoint_is_safetensors_and_json_and_resumes_exactly(trained, config, tmp_path):
    trainer, plan = trained
    written = _write(tmp_path, trainer, plan, config)
    assert {p.name for p in tmp_path.iterdir()} >= {TRAINING_FILE, TENSORS_FILE, CONFIG_FILE}
    _assert_no_pickle(tmp_path)

    saved = read_saved(tmp_path, config=config, where="test")
    fresh, _ = _trainer(config)
    fresh.load_state_dict(saved.training)
    assert fresh.steps == trainer.steps > 0
    for name, value in trainer.trainable_state().items():
        assert torch.equal(fresh.trainable_state()[name], value)
    assert fresh.accountant_history == trainer.accountant_history
    assert fresh.schedule.state_dict() == trainer.schedule.state_dict()
    old, new = trainer.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert old["param_groups"] == new["param_groups"]
    for index, state in old["state"].items():
        for key, value in state.items():
            assert torch.equal(new["state"][index][key], value), (index, key)
    assert torch.equal(saved.training["rng"][0]["noise"], written["rng"][0]["noise"])
    assert saved.training["train_seconds"] == 1.5


def test_other_trials_checkpoint_is_refused_before_any_tensor_is_read(trained, config, tmp_path, monkeypatch):
    trainer, plan = trained
    _write(tmp_path, trainer, plan, config)
    import safetensors.torch

    def no_tensors(*_args, **_kwargs):
        raise AssertionError("tensors read before the trial config was checked")

    monkeypatch.setattr(safetensors.torch, "load_file", no_tensors)
    with pytest.raises(ConfigError, match="different trial config"):
        read_saved(tmp_path, config=config.override(seed=7), where="test")


def test_pickled_checkpoint_of_an_older_dpsweep_is_refused_unread(config, tmp_path):
    (tmp_path / CONFIG_FILE).write_text(config.to_json())
    (tmp_path / "outcome.pkl").write_bytes(b"\x80\x04not read")
    with pytest.raises(ConfigError, match="never loaded"):
        read_saved(tmp_path, config=config, where="test")


def test_outcome_round_trips_through_json(trained, config, tmp_path):
    from dpsweep.train.metrics import Metrics
    from dpsweep.train.record import TrialResult

    trainer, plan = trained
    metrics = Metrics(weighted_f1=0.5, macro_f1=0.25, micro_f1=0.5, per_label_f1={"a": 0.5, "b": 0.0},
                      auroc_macro=None, positives={"a": 12, "b": 3})
    trial = TrialResult(status="completed", config=config, ledger=trainer_ledger(trainer, config, plan),
                        dataset="mimic-cxr", label_names=("a", "b"), n_train=10, n_val=4, epochs=0.3,
                        val=metrics, val_tuned=metrics, thresholds=[0.5, 0.45], train_seconds=2.0,
                        model_uri="/models/x")
    ranks = [RankSummary(rank=0, node_id="n", steps=trainer.steps, epsilon=math.inf, weights_sha256="ab",
                         resumed_from_steps=0)]
    write_outcome(tmp_path, Outcome(trial=trial, ranks=ranks, first_started_at=3.0))
    assert (tmp_path / OUTCOME_FILE).is_file()
    _assert_no_pickle(tmp_path)
    back = read_saved(tmp_path, config=config, where="test").outcome
    assert back.trial == trial and back.ranks == ranks and back.first_started_at == 3.0


def test_malformed_outcome_is_one_clear_error(config, tmp_path):
    (tmp_path / CONFIG_FILE).write_text(config.to_json())
    (tmp_path / OUTCOME_FILE).write_text(json.dumps({"trial": {"status": "completed"}}))
    with pytest.raises(ConfigError, match="does not hold a trial outcome"):
        read_saved(tmp_path, config=config, where="test")
