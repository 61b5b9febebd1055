"""Per-rank Poisson sampling that keeps ranks in step, without Ray (a world of one rank)."""

from __future__ import annotations

import pytest
import torch

from dpsweep.distributed.sampling import LockstepPoissonSampler, lockstep_loader
from dpsweep.train.batches import EmptySafeCollate, encode
from dpsweep.train.loop import PrivateTrainer, load_trial_corpus, plan_trial, trial_model
from dpsweep.train.loss import MultiLabelBCE


@pytest.fixture
def world_of_one(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_lockstep_sampler_yields_every_batch_and_the_same_samples(world_of_one):
    from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler

    def sampler(cls):
        return cls(total_size=10, sample_rate=0.05, generator=torch.Generator().manual_seed(3))

    ours = list(sampler(LockstepPoissonSampler))
    opacus = [b.tolist() for b in sampler(DistributedUniformWithReplacementSampler)]
    assert len(ours) == int(1 / 0.05)  # one batch per step, empty ones included
    assert [] in ours
    assert [b for b in ours if b] == opacus


def test_placeholder_for_an_empty_batch_has_zero_loss_and_gradient():
    input_ids, attention, targets = EmptySafeCollate(0, num_labels=5)([])
    assert input_ids.shape == attention.shape == (1, 1) and targets.shape == (1, 5)
    logits = torch.randn(1, 5, requires_grad=True)
    loss = MultiLabelBCE("mean")(logits, targets)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_dp_trainer_steps_through_empty_local_batches(world_of_one, tiny_model_dir, synth_mimic):
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

    from dpsweep.train import TrialConfig

    config = TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                         max_length=48, batch_size=1, physical_batch_size=16, max_epochs=0.05, rank=2,
                         accountant="rdp", epsilon=8.0, sigma=1.0)  # q = 1/n: about a third of batches empty
    corpus = load_trial_corpus(config)
    plan = plan_trial(config, corpus)
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    shapes: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
    trainer = PrivateTrainer(DPDDP(model), encode(corpus.train, tokenizer, max_length_tokens=48), config, plan,
                             adapt_loader=lockstep_loader)
    assert trainer.run() == plan.steps
    assert sum(n for _, _, n in trainer.accountant_history) == plan.steps
    assert (1, 1) in shapes  # a placeholder row stood in for an empty batch
