"""Patient-level DP, secure noise by default, and empty Poisson batches (issue "Privacy truth")."""

from __future__ import annotations

import math

import pytest
import torch

import dpsweep.train.loop as loop
from dpsweep.errors import ConfigError
from dpsweep.train import TrialConfig, run_trial
from dpsweep.train.batches import encode
from dpsweep.train.loop import load_trial_corpus, make_trainer, plan_trial, trial_model


@pytest.fixture(scope="module")
def base(tiny_model_dir, synth_mimic) -> TrialConfig:
    return TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                       max_length=32, batch_size=32, physical_batch_size=8, max_epochs=1.0, rank=2,
                       lr=5e-3, seed=0, accountant="rdp", epsilon=8.0, sigma=1.0)


def _quiet(_msg: str) -> None:
    pass


def _trainer(config: TrialConfig):
    corpus = load_trial_corpus(config)
    plan = plan_trial(config, corpus)
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    return make_trainer(model, train, config, plan), corpus, plan


def test_patient_unit_clips_each_patients_summed_gradient_to_c(base, monkeypatch):
    config = base.override(privacy_unit="patient", clip=0.05, clipping="flat")
    trainer, corpus, plan = _trainer(config)
    patients = len(set(corpus.train.groups))
    assert patients < len(corpus.train)  # the corpus has patients with several reports
    assert plan.sample_rate == pytest.approx(1 / math.ceil(patients / config.batch_size))
    seen = []
    original = loop.sum_grad_samples_by_owner

    def checked(optimizer, owner):
        per_report = {id(p): p.grad_sample.clone() for p in optimizer.params}
        original(optimizer, owner)
        for p in optimizer.params:
            expected = torch.zeros_like(p.grad_sample).index_add_(0, owner, per_report[id(p)])
            torch.testing.assert_close(p.grad_sample, expected)
        flat = torch.cat([p.grad_sample.flatten(1) for p in optimizer.params], dim=1)
        norms = flat.norm(dim=1)
        factor = (config.clip / (norms + 1e-6)).clamp(max=1.0)  # Opacus' flat clip factor
        seen.append((int(owner.max()) + 1, len(owner), norms, (norms * factor)))

    monkeypatch.setattr(loop, "sum_grad_samples_by_owner", checked)
    trainer.run()
    assert seen and sum(n for n, _, _, _ in seen) > 0
    assert any(rows > n for n, rows, _, _ in seen)  # some physical batch held a patient with 2+ reports
    for _, _, _, clipped in seen:
        assert torch.all(clipped <= config.clip * (1 + 1e-5))
    assert any(torch.any(raw > config.clip) for _, _, raw, _ in seen)  # clipping bound: not vacuous


def test_patient_unit_trial_counts_patients(base):
    result = run_trial(base.override(privacy_unit="patient"), log=_quiet)
    assert result.status == "completed" and result.ledger.epsilon <= 8.0
    corpus = load_trial_corpus(base)
    patients = len(set(corpus.train.groups))
    assert result.ledger.sample_rate == pytest.approx(1 / math.ceil(patients / base.batch_size))


def test_patient_unit_refused_without_patient_ids(tmp_path, tiny_model_dir):
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = ["accession_id,text,Edema"] + [f"a{i},report number {i} shows things,{i % 2}" for i in range(40)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    config = TrialConfig(dataset_format="csv", data_path=str(folder), model=str(tiny_model_dir),
                         privacy_unit="patient", epsilon=8.0, sigma=1.0, delta=1e-3, max_length=16)
    with pytest.raises(ConfigError, match="patient_id column"):
        run_trial(config, log=_quiet)


def test_patient_unit_refuses_ghost():
    with pytest.raises(ConfigError, match="--grad-sample-mode hooks"):
        TrialConfig(privacy_unit="patient", grad_sample_mode="ghost", clipping="flat")


def _trained_weights(config: TrialConfig) -> torch.Tensor:
    trainer, _, _ = _trainer(config)
    trainer.run()
    return torch.cat([p.detach().flatten() for p in trainer.module.parameters() if p.requires_grad])


def test_same_seed_gives_different_noise_by_default_and_same_when_reproducible(base):
    config = base.override(max_epochs=0.3)
    assert not torch.equal(_trained_weights(config), _trained_weights(config))
    reproducible = config.override(noise="reproducible")
    assert torch.equal(_trained_weights(reproducible), _trained_weights(reproducible))


def test_batch_size_one_survives_empty_poisson_batches(base):
    """q = 1/n: most Poisson batches are empty; each becomes a zero-loss placeholder step."""
    config = base.override(batch_size=1, physical_batch_size=1, max_epochs=0.05)
    trainer, corpus, plan = _trainer(config)
    steps = trainer.run()
    assert steps == plan.steps and steps >= 5
    assert sum(n for _, _, n in trainer.accountant_history) == steps
