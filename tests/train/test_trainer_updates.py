"""dpsweep's own trainer really trains: after a few steps every LoRA B and the head moved,
and no frozen backbone weight did.

peft initialises every LoRA B to zero, so a B that is still zero after training means its
gradient never reached the optimizer (e.g. the optimizer holds other tensors than the
model, opacus issue #820): the trial would then report the metrics of an untrained model.
Runs in seconds: tiny BERT, 3 steps of 32-token reports, σ given (no calibration).
"""

from __future__ import annotations

import math

import pytest
import torch

from dpsweep.settings import TrialConfig
from dpsweep.train.batches import encode
from dpsweep.train.loop import load_trial_corpus, make_trainer, trial_model
from dpsweep.train.plan import plan_steps

STEPS = 3
BATCH = 16
TINY_LAYERS = 2  # tests.conftest.tiny_config
BERT_TARGETS = ("query", "value")  # peft's default LoRA targets for model type "bert"

CASES = {
    "non-private": dict(epsilon=math.inf),
    "dp-hooks-per-layer": dict(epsilon=8.0, sigma=1.0, grad_sample_mode="hooks", clipping="per_layer"),
    "dp-hooks-flat": dict(epsilon=8.0, sigma=1.0, grad_sample_mode="hooks", clipping="flat"),
    "dp-ghost-flat": dict(epsilon=8.0, sigma=1.0, grad_sample_mode="ghost", clipping="flat"),
    # LoRA on the top layer only, the frozen bottom layer served from the prefix cache
    "dp-top-layer-cached": dict(epsilon=8.0, sigma=1.0, lora_layers=1, prefix_cache=True),
}


@pytest.fixture(scope="module")
def base(tiny_model_dir, synth_mimic) -> TrialConfig:
    config = TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                         max_length=32, batch_size=BATCH, physical_batch_size=BATCH, rank=2, seed=0,
                         accountant="rdp", lr=1e-2, head_lr=0.1)
    per_epoch = math.ceil(len(load_trial_corpus(config).train) / BATCH)
    return config.override(max_epochs=(STEPS + 0.5) / per_epoch)  # floor(...) = STEPS logical steps


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _adapted_modules(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if hasattr(module, "lora_B")]


@pytest.mark.parametrize("changes", list(CASES.values()), ids=list(CASES))
def test_trainer_moves_every_adapter_and_the_head_but_no_frozen_weight(base, changes):
    config = base.override(**changes)
    corpus = load_trial_corpus(config)
    plan = plan_steps(config, n_train=len(corpus.train))
    assert plan.feasible and plan.steps == STEPS, plan
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    if config.lora_layers is not None:
        assert model.enable_prefix_cache(train.input_ids, pad_id=train.pad_id) == ""
    before = _snapshot(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    b_names = sorted(name for name in before if "lora_B" in name)

    # Not vacuous: one B per adapted module, as many modules as targets x adapted layers, all zero.
    layers = config.lora_layers or TINY_LAYERS
    assert len(b_names) == len(_adapted_modules(model)) == layers * len(BERT_TARGETS)
    assert all(torch.count_nonzero(before[name]) == 0 for name in b_names)
    assert {"head.weight", "head.bias"} <= trainable and set(b_names) <= trainable
    frozen = [name for name in before if name not in trainable]
    assert any("word_embeddings" in name for name in frozen)
    assert any("base_layer" in name for name in frozen)  # the weights LoRA wraps stay frozen

    trainer = make_trainer(model, train, config, plan)
    assert trainer.run() == STEPS
    after = _snapshot(model)  # Opacus wraps the classifier in place: same parameter tensors

    assert set(after) == set(before), "training changed the model's parameter names"
    unmoved = [name for name in sorted(trainable) if torch.equal(after[name], before[name])]
    assert unmoved == [], f"trainable parameters left unchanged after {STEPS} steps: {unmoved}"
    moved = [name for name in frozen if not torch.equal(after[name], before[name])]
    assert moved == [], f"frozen parameters changed: {moved}"


@pytest.mark.parametrize("changes", list(CASES.values()), ids=list(CASES))
def test_trainer_module_is_the_classifier(base, changes):
    """`trainer.module` is what a trial evaluates, checkpoints and hashes: the bare classifier."""
    config = base.override(**changes)
    corpus = load_trial_corpus(config)
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    trainer = make_trainer(model, train, config, plan_steps(config, n_train=len(corpus.train)))
    assert trainer.module is model
    assert set(trainer.trainable_state()) == {n for n, p in model.named_parameters() if p.requires_grad}
