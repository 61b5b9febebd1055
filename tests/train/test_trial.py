"""One trial end to end on a tiny model and a tiny synthetic MIMIC-CXR corpus."""

from __future__ import annotations

import math

import pytest

from dpsweep.privacy import compute_epsilon
from dpsweep.train import TrialConfig, run_trial


@pytest.fixture(scope="module")
def base(tiny_model_dir, synth_mimic) -> TrialConfig:
    return TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                       max_length=48, batch_size=32, physical_batch_size=16, max_epochs=1.0, rank=2,
                       lr=5e-3, seed=0, accountant="rdp")


def _quiet(_msg: str) -> None:
    pass


def test_dp_trial_reports_the_accountants_epsilon(base):
    result = run_trial(base.override(epsilon=8.0, sigma=1.0), log=_quiet)
    ledger = result.ledger
    assert result.status == "completed"
    assert ledger.steps > 0 and ledger.sigma == 1.0 and ledger.accountant == "rdp"
    assert ledger.epsilon == compute_epsilon(sigma=1.0, sample_rate=ledger.sample_rate, steps=ledger.steps,
                                             delta=base.delta, accountant="rdp")
    assert ledger.epsilon <= 8.0
    assert ledger.sample_rate == pytest.approx(1 / math.ceil(result.n_train / base.batch_size))
    assert 0.0 <= result.val.weighted_f1 <= 1.0 and set(result.val.per_label_f1) == set(result.label_names)
    assert result.test is not None  # the MIMIC-CXR split file has a test split


def test_sigma_calibrated_when_not_given(base):
    result = run_trial(base.override(epsilon=4.0), log=_quiet)
    assert result.status == "completed" and result.ledger.sigma > 0
    assert result.ledger.epsilon <= 4.0


def test_non_private_trial_spends_infinite_epsilon(base):
    result = run_trial(base.override(epsilon=math.inf), log=_quiet)
    assert result.status == "completed" and math.isinf(result.ledger.epsilon)
    assert result.ledger.sigma == 0.0 and result.ledger.accountant == "none"


def test_same_seed_same_result_with_reproducible_noise(base):
    """Only with noise=reproducible (not private); secure noise differs by design (test_privacy_unit)."""
    config = base.override(epsilon=8.0, sigma=1.0, max_epochs=0.5, noise="reproducible")
    a = run_trial(config, log=_quiet)
    b = run_trial(config, log=_quiet)
    assert a.val.per_label_f1 == b.val.per_label_f1 and a.ledger == b.ledger


def test_sigma_too_small_is_infeasible_not_a_crash(base):
    result = run_trial(base.override(epsilon=0.05, sigma=0.3), log=_quiet)
    assert result.status == "infeasible" and result.ledger.steps == 0
    assert "σ" in result.reason or "sigma" in result.reason


def test_evaluation_of_a_large_split_says_how_far_it_is(base):
    from dpsweep.data import load_corpus
    from dpsweep.model import ModelSpec, load_classifier
    from dpsweep.train.batches import encode, predict
    from dpsweep.train.loop import EvalProgress

    corpus = load_corpus("mimic-cxr", base.data_path)
    model, tokenizer = load_classifier(ModelSpec(name_or_path=base.model), num_labels=len(corpus.label_names))
    val = encode(corpus.val, tokenizer, max_length_tokens=base.max_length)
    lines: list[str] = []
    probs = predict(model, val, batch_size=4, progress=EvalProgress("validation", lines.append, every_s=0.0))
    assert probs.shape == (len(val), len(corpus.label_names))
    batches = -(-len(val) // 4)
    assert len(lines) == batches - 1  # one per batch but the last (the trial's summary follows it)
    assert lines[0].startswith(f"evaluating validation: 4/{len(val)} reports")
    assert all("ETA" in line for line in lines)
