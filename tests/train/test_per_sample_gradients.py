"""Opacus' per-sample gradients on our classifier equal gradients of one-example batches.

The slow reference (a backward pass per example) checks the fast path (hooks), as
Opacus' own tests do; ghost clipping is checked through the clipped, summed gradient.
"""

from __future__ import annotations

import pytest
import torch

from dpsweep.model import LoraSettings, ModelSpec, build_classifier, trainable_parameters
from dpsweep.train.loss import IGNORE, MultiLabelBCE
from tests.conftest import tiny_backbone


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    # no dropout: the reference and the fast path must see the same network
    model = build_classifier(tiny_backbone("bert", dropout=0.0), num_labels=3,
                             spec=ModelSpec(lora=LoraSettings(rank=2)))
    with torch.no_grad():  # lora_B starts at zero: give it values so lora_A gets gradients too
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    ids = torch.randint(5, 1000, (5, 10))
    attention = torch.ones_like(ids)
    attention[1, 6:] = 0
    attention[3, 4:] = 0
    targets = (torch.rand(5, 3) < 0.5).float()
    targets[2, 1] = IGNORE
    return model, ids, attention, targets


def _micro_batch_grads(model, ids, attention, targets) -> list[dict[str, torch.Tensor]]:
    criterion = MultiLabelBCE("sum")
    out = []
    for i in range(len(ids)):
        model.zero_grad(set_to_none=True)
        criterion(model(ids[i : i + 1], attention[i : i + 1]), targets[i : i + 1]).backward()
        out.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
    return out


def test_hooks_per_sample_gradients_equal_micro_batches():
    from opacus import GradSampleModule

    model, ids, attention, targets = _model_and_batch()
    reference = _micro_batch_grads(model, ids, attention, targets)
    model.zero_grad(set_to_none=True)
    gsm = GradSampleModule(model, loss_reduction="sum")
    MultiLabelBCE("sum")(gsm(ids, attention), targets).backward()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any("head" in n for n in names)
    for name, param in gsm._module.named_parameters():
        if not param.requires_grad:
            continue
        assert param.grad_sample is not None, name
        for i, ref in enumerate(reference):
            torch.testing.assert_close(param.grad_sample[i], ref[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_clipped_sum_matches_reference(mode):
    """With zero noise, the DP gradient is the mean of per-example clipped gradients."""
    from opacus import PrivacyEngine

    model, ids, attention, targets = _model_and_batch(seed=3)
    clip = 0.05
    reference = _micro_batch_grads(model, ids, attention, targets)
    expected = {}
    for ref in reference:
        norm = torch.sqrt(sum((g**2).sum() for g in ref.values()))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for n, g in ref.items():
            expected[n] = expected.get(n, 0) + g * factor / len(reference)
    model.zero_grad(set_to_none=True)
    optimizer = torch.optim.SGD(trainable_parameters(model), lr=0.0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids), batch_size=len(ids))
    out = PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=loader,
                                       criterion=MultiLabelBCE("mean"), noise_multiplier=0.0,
                                       max_grad_norm=clip, poisson_sampling=False, grad_sample_mode=mode)
    dp_model, dp_optimizer = out[0], out[1]
    criterion = out[2] if mode == "ghost" else MultiLabelBCE("mean")
    criterion(dp_model(ids, attention), targets).backward()
    dp_optimizer.step()
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, expected[name], rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("share", [0.5, 0.2])
def test_per_layer_clipping_matches_reference_and_bounds_each_example(share):
    """Per-layer clipping (the default): each tensor clipped to its own norm, and one
    example's whole clipped gradient still has norm <= C, the sensitivity σ·C noise covers."""
    from opacus import PrivacyEngine

    from dpsweep.settings import TrialConfig
    from dpsweep.train.loop import clipping_arguments, optimizer_and_schedule

    model, ids, attention, targets = _model_and_batch(seed=5)
    clip = 0.05
    config = TrialConfig(clip=clip, clipping="per_layer", head_clip_share=share)
    optimizer, _ = optimizer_and_schedule(model, config, total_steps=1)
    args = clipping_arguments(optimizer, config)
    assert args["clipping"] == "per_layer"
    norms = dict(zip([id(p) for g in optimizer.param_groups for p in g["params"]], args["max_grad_norm"], strict=True))
    head = {id(p) for n, p in model.named_parameters() if n.startswith("head.")}
    assert sum(c**2 for i, c in norms.items() if i in head) == pytest.approx(share * clip**2)
    assert sum(c**2 for c in norms.values()) == pytest.approx(clip**2)

    reference = _micro_batch_grads(model, ids, attention, targets)
    params = dict(model.named_parameters())
    expected: dict[str, torch.Tensor] = {}
    for ref in reference:
        clipped = {n: g * min(1.0, norms[id(params[n])] / (float(g.norm()) + 1e-6)) for n, g in ref.items()}
        assert float(torch.sqrt(sum((g**2).sum() for g in clipped.values()))) <= clip * (1 + 1e-5)
        for n, g in clipped.items():
            expected[n] = expected.get(n, 0) + g / len(reference)
    # not vacuous: clipping binds on some tensor of every example
    assert all(any(float(g.norm()) > norms[id(params[n])] for n, g in ref.items()) for ref in reference)

    for group in optimizer.param_groups:
        group["lr"] = 0.0
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids), batch_size=len(ids))
    dp_model, dp_optimizer, _ = PrivacyEngine().make_private(
        module=model, optimizer=optimizer, data_loader=loader, criterion=MultiLabelBCE("mean"),
        noise_multiplier=0.0, poisson_sampling=False, grad_sample_mode="hooks", **args)
    assert dp_optimizer.max_grad_norm == pytest.approx(clip)  # Opacus scales the noise by this: σ·C
    MultiLabelBCE("mean")(dp_model(ids, attention), targets).backward()
    dp_optimizer.step()
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, expected[name], rtol=1e-3, atol=1e-7)


def test_flat_clipping_arguments_are_one_norm():
    from dpsweep.settings import TrialConfig
    from dpsweep.train.loop import clipping_arguments, optimizer_and_schedule

    model, *_ = _model_and_batch()
    optimizer, _ = optimizer_and_schedule(model, TrialConfig(), total_steps=1)
    assert clipping_arguments(optimizer, TrialConfig(clip=0.7, clipping="flat")) == {"max_grad_norm": 0.7}
