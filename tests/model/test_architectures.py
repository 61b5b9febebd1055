"""LoRA targets per architecture, and one DP step on tiny models of each."""

from __future__ import annotations

import pytest
import torch

from dpsweep.errors import ConfigError, ModelError
from dpsweep.model import (
    LoraSettings,
    ModelSpec,
    build_classifier,
    lora_targets_for,
    trainable_parameters,
)
from dpsweep.train.loss import MultiLabelBCE
from tests.conftest import tiny_backbone

ARCHS = ["bert", "albert", "roberta", "llama"]


def _dp_step(model, *, batch: int = 6, length: int = 12, mode: str = "hooks"):
    from opacus import PrivacyEngine

    torch.manual_seed(1)
    ids = torch.randint(5, 1000, (batch, length))
    attention = torch.ones_like(ids)
    attention[0, 8:] = 0  # one padded row
    targets = (torch.rand(batch, 3) < 0.5).float()
    optimizer = torch.optim.SGD(trainable_parameters(model), lr=0.5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids), batch_size=batch)
    out = PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=loader,
                                       criterion=MultiLabelBCE("mean"), noise_multiplier=0.5,
                                       max_grad_norm=1.0, poisson_sampling=False, grad_sample_mode=mode)
    dp_model, dp_optimizer = out[0], out[1]
    criterion = out[2] if mode == "ghost" else MultiLabelBCE("mean")
    loss = criterion(dp_model(ids, attention), targets)
    loss.backward()
    dp_optimizer.step()
    return dp_model


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_targets_found_and_dp_step_updates_adapters(arch):
    backbone = tiny_backbone(arch)
    targets = lora_targets_for(backbone.config.model_type)
    model = build_classifier(backbone, num_labels=3, spec=ModelSpec(lora=LoraSettings(rank=2)))
    lora_names = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora_names, f"no LoRA parameters injected for {arch}"
    assert all(any(t in n for t in targets) for n in lora_names)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all("lora_" not in n and not n.startswith("head.") for n in frozen)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    _dp_step(model)
    after = dict(model.named_parameters())
    changed = [n for n in before if not torch.equal(before[n], after[n].detach())]
    # lora_B starts at zero and lora_A's gradient is zero while B is zero, so after one step
    # the B matrices and the head must have moved.
    assert any("lora_B" in n for n in changed), f"{arch}: LoRA weights did not change after a DP step"
    assert any(n.startswith("head.") for n in changed)
    frozen_now = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert all(p.grad is None for p in frozen_now.values())


def test_ghost_mode_step_updates_adapters():
    model = build_classifier(tiny_backbone("bert"), num_labels=3, spec=ModelSpec(lora=LoraSettings(rank=2)))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    _dp_step(model, mode="ghost")
    after = dict(model.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)


def test_unknown_architecture_needs_explicit_targets():
    with pytest.raises(ConfigError, match="lora_targets"):
        lora_targets_for("no-such-arch")


def test_missing_targets_named_in_error():
    with pytest.raises(ConfigError, match="not found"):
        build_classifier(tiny_backbone("bert"), num_labels=3,
                         spec=ModelSpec(lora=LoraSettings(targets=("no_such_proj",))))


def test_bad_lora_settings_refused():
    with pytest.raises(ConfigError, match="rank"):
        LoraSettings(rank=0)


def test_unknown_model_folder_is_a_model_error(tmp_path):
    from dpsweep.model import resolve_model_path

    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="config.json"):
        resolve_model_path(str(tmp_path))


def test_saved_tiny_model_loads_like_a_user_folder(tiny_model_dir):
    from dpsweep.model import load_classifier

    model, tokenizer = load_classifier(ModelSpec(name_or_path=str(tiny_model_dir)), num_labels=4)
    enc = tokenizer(["no acute findings", "small left effusion"], padding=True, return_tensors="pt")
    assert model(enc["input_ids"], enc["attention_mask"]).shape == (2, 4)
    assert model.training


def test_mean_pooling_ignores_padding():
    from dpsweep.model import pool

    hidden = torch.arange(12, dtype=torch.float32).reshape(1, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0]])
    assert torch.allclose(pool(hidden, mask, "mean"), hidden[0, :2].mean(0, keepdim=True))
    assert torch.equal(pool(hidden, mask, "last"), hidden[:, 1])
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_top_layers_only_adapts_the_last_layers(arch):
    model = build_classifier(tiny_backbone(arch), num_labels=3,
                             spec=ModelSpec(lora=LoraSettings(rank=2, top_layers=1)))
    lora = [n for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(".1." in n for n in lora), lora  # tiny models have layers 0 and 1


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_backbone_dropout_off_makes_training_forward_deterministic(arch):
    backbone = tiny_backbone(arch, dropout=0.3)
    model = build_classifier(backbone, num_labels=3, spec=ModelSpec(lora=LoraSettings(rank=2)))
    ids = torch.randint(5, 1000, (4, 9))
    attention = torch.ones_like(ids)
    assert model.training
    assert torch.equal(model(ids, attention), model(ids, attention))
    kept = build_classifier(tiny_backbone("bert", dropout=0.3), num_labels=3,
                            spec=ModelSpec(lora=LoraSettings(rank=2), backbone_dropout=True))
    assert not torch.equal(kept(ids, attention), kept(ids, attention))
