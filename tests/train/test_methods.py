"""The `method` setting: what each method trains, and that private data reaches it only through DP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dpsweep.train import TrialConfig, run_trial
from dpsweep.train.plan import plan_steps

METHODS = ("lora", "bitfit", "head", "linear")


@pytest.fixture(scope="module")
def public_mimic(tmp_path_factory):
    from dpsweep.data import write_synthetic

    return write_synthetic("mimic-cxr", tmp_path_factory.mktemp("public") / "mimic", n=200, seed=1)


@pytest.fixture(scope="module")
def base(tiny_model_dir, synth_mimic, public_mimic) -> TrialConfig:
    return TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                       max_length=48, batch_size=32, physical_batch_size=16, max_epochs=1.0, rank=2,
                       lora_layers=1, seed=0, accountant="rdp", epsilon=8.0, public_format="mimic-cxr",
                       public_path=str(public_mimic), public_warm_steps=2, linear_dims=8)


def _quiet(_msg: str) -> None:
    pass


class _Stop(Exception):
    pass


def _state_before_dp(config: TrialConfig, corpus, monkeypatch) -> dict:
    """Everything the model holds (weights, buffers) when training on the private split starts."""
    import dpsweep.train.loop as loop

    seen: dict = {}

    def capture(model, train, cfg, plan, **_kw):
        seen["private"] = cfg.private
        seen["n_train"] = len(train)
        seen["state"] = {k: v.detach().clone() for k, v in loop.unwrap(model).state_dict().items()}
        raise _Stop

    monkeypatch.setattr(loop, "make_trainer", capture)
    with pytest.raises(_Stop):
        run_trial(config, corpus=corpus, log=_quiet)
    return seen


def _other_private_split(corpus):
    """The same corpus with the training reports and labels replaced (validation untouched)."""
    from dataclasses import replace

    rng = np.random.default_rng(5)
    train = corpus.train
    texts = [" ".join(rng.permutation(t.split())) + " pleural effusion" for t in reversed(train.texts)]
    labels = 1.0 - train.labels
    return replace(corpus, train=type(train)(texts=texts, labels=labels, mask=train.mask, groups=list(train.groups)))


@pytest.mark.parametrize("method", METHODS)
def test_private_reports_reach_each_method_only_through_dp(base, method, monkeypatch):
    """No vocabulary, IDF, mean, prior or warm start is fitted on the private training split:
    two different private splits leave the model identical up to the first DP step."""
    from dpsweep.train.loop import load_trial_corpus

    config = base.override(method=method)
    corpus = load_trial_corpus(config)
    a = _state_before_dp(config, corpus, monkeypatch)
    b = _state_before_dp(config, _other_private_split(corpus), monkeypatch)
    assert a["private"] and b["private"]  # the trainer that sees the private split is the DP one
    assert a["n_train"] == b["n_train"] == len(corpus.train)
    assert a["state"].keys() == b["state"].keys()
    differing = [k for k in a["state"] if not torch.equal(a["state"][k], b["state"][k])]
    assert differing == []


def test_linear_features_come_from_the_public_corpus_alone(base):
    from dpsweep.model.linear import fit_public_features
    from dpsweep.train.loop import load_trial_corpus
    from dpsweep.train.methods import build_trial_model, load_public_corpus, public_texts

    config = base.override(method="linear")
    corpus = load_trial_corpus(config)
    public = load_public_corpus(config, label_names=corpus.label_names)
    model, tokenizer = build_trial_model(config, num_labels=len(corpus.label_names), public=public, device="cpu")
    expected = fit_public_features(public_texts(public), dims=config.linear_dims, seed=config.seed)
    assert tokenizer.vocabulary == expected["vocabulary"]
    assert torch.equal(model.idf, expected["idf"]) and torch.equal(model.mean, expected["mean"])
    assert torch.equal(model.projection, expected["projection"])
    assert not set(tokenizer.vocabulary) >= {"sentinelword"}  # private-only words are not in it


@pytest.mark.parametrize("method,trained", [("bitfit", {"bias", "head"}), ("head", {"head"}),
                                            ("linear", {"head"}), ("lora", {"lora_", "head"})])
def test_each_method_trains_only_its_parameters(base, method, trained):
    from dpsweep.train.loop import load_trial_corpus
    from dpsweep.train.methods import build_trial_model, load_public_corpus

    config = base.override(method=method)
    corpus = load_trial_corpus(config)
    public = load_public_corpus(config, label_names=corpus.label_names)
    model, _ = build_trial_model(config, num_labels=len(corpus.label_names), public=public, device="cpu")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("head.") or any(t in n for t in trained) for n in names)
    if method == "bitfit":
        assert all(n.startswith("head.") or n.endswith(".bias") for n in names)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_saves_and_predicts(base, method, tmp_path):
    from dpsweep.export import load_model, predict_probabilities
    from dpsweep.train.loop import load_trial_corpus

    config = base.override(method=method, ema=0.5, pos_weight=2.0)
    result = run_trial(config, log=_quiet, output_dir=str(tmp_path / method))
    assert result.status == "completed" and result.ledger.steps > 0 and result.ledger.epsilon <= 8.0
    loaded = load_model(tmp_path / method)
    assert loaded.metadata["method"] == method
    texts = list(load_trial_corpus(config).val.texts[:5])
    probs = predict_probabilities(loaded, texts)
    assert probs.shape == (5, len(result.label_names)) and np.isfinite(probs).all()


def test_full_batch_is_q_one(base):
    plan = plan_steps(base.override(full_batch=True, max_epochs=5.0), n_train=250)
    assert plan.sample_rate == 1.0 and plan.steps_per_epoch == 1 and plan.steps == 5


def test_ema_model_is_the_moving_average_of_the_iterates(base):
    """EMA is post-processing: the final weights are the average of the iterates the trainer took."""
    from dpsweep.train.batches import encode
    from dpsweep.train.loop import load_trial_corpus, make_trainer, plan_trial
    from dpsweep.train.methods import build_trial_model, load_public_corpus

    config = base.override(method="linear", epsilon=math.inf, ema=0.7, public_warm_steps=0)
    corpus = load_trial_corpus(config)
    public = load_public_corpus(config, label_names=corpus.label_names)
    model, tokenizer = build_trial_model(config, num_labels=len(corpus.label_names), public=public, device="cpu")
    trainer = make_trainer(model, encode(corpus.train, tokenizer, max_length_tokens=48), config,
                           plan_trial(config, corpus))
    expected = model.head.weight.detach().clone()
    iterates = []
    trainer.run(on_step=lambda *_: iterates.append(model.head.weight.detach().clone()))
    for w in iterates:
        expected = 0.7 * expected + 0.3 * w
    assert len(iterates) == trainer.steps > 1
    torch.testing.assert_close(model.head.weight.detach(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(model.head.weight, iterates[-1])


def test_pos_weight_scales_the_positive_terms():
    from torch.nn import functional as F

    from dpsweep.train.loss import MultiLabelBCE

    logits, targets = torch.tensor([[0.3, -1.0]]), torch.tensor([[1.0, 0.0]])
    got = MultiLabelBCE("sum", pos_weight=3.0)(logits, targets)
    want = 3.0 * F.softplus(-logits[0, 0]) + F.softplus(logits[0, 1])
    torch.testing.assert_close(got, want)


def test_linear_without_public_data_is_refused():
    from dpsweep.errors import ConfigError

    with pytest.raises(ConfigError, match="public"):
        TrialConfig(method="linear")
    with pytest.raises(ConfigError, match="both format and path"):
        TrialConfig(public_format="ct-rate")


def test_a_missing_public_corpus_is_named_before_any_training(base, tmp_path):
    from dpsweep.data import load_corpus
    from dpsweep.errors import DataError
    from dpsweep.train.methods import load_public_corpus

    missing = base.override(public_path=str(tmp_path / "nowhere"))
    corpus = load_corpus("mimic-cxr", base.data_path)
    with pytest.raises(DataError, match=r"public_data \(path .*nowhere\).*dpsweep data synth --format mimic-cxr"):
        load_public_corpus(missing, label_names=corpus.label_names)


@pytest.mark.parametrize(("method", "warm_batch", "expected"), [("lora", None, 32), ("lora", 8, 8),
                                                                   ("linear", None, 1024), ("head", 12, 12)])
def test_warm_start_batch(base, monkeypatch, method, warm_batch, expected):
    """public_warm_batch_size sets the warm start's batch; by default the trial's batch (1024 for linear)."""
    import dpsweep.train.loop as loop
    from dpsweep.train.methods import warm_start

    seen = {}

    class Recorder:
        def __init__(self, model, public, config, plan, **_kw):
            seen.update(batch=config.batch_size, steps=plan.steps, q=plan.sample_rate, private=config.private)

        def run(self):
            pass

    monkeypatch.setattr(loop, "NonPrivateTrainer", Recorder)
    public = type("Encoded", (), {"__len__": lambda self: 2000})()
    config = base.override(method=method, public_warm_steps=7, public_warm_batch_size=warm_batch)
    warm_start(None, public, config, device="cpu", log=_quiet)
    assert seen == {"batch": expected, "steps": 7, "q": expected / 2000, "private": False}
