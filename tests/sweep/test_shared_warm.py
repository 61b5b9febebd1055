"""A sweep runs the public warm start once when no searched setting changes it; each trial starts from it."""

from __future__ import annotations

import re

import pytest
import torch

import dpsweep.train.loop as loop
from dpsweep.data import load_corpus
from dpsweep.sweep.runner import inspect_sweep, shared_warm_config
from dpsweep.sweep.spec import load_spec
from dpsweep.train.methods import warm_start_key, warm_start_reads, warm_state

PUBLIC_TRAINING = {"physical_batch_size": 64, "head_lr": 0.1, "public_warm_steps": 3,
                   "public_warm_batch_size": 16}


def _plan(write_space, synth_mimic, *, search=None, training=None):
    from tests.sweep.conftest import tiny_space

    base = tiny_space("", "", store="")
    changes = {"public_data": {"format": "mimic-cxr", "path": str(synth_mimic)},
               "training": {**PUBLIC_TRAINING, **(training or {})},
               "search": {**base["search"], "rank": 2, **(search or {})}}
    return inspect_sweep(load_spec(write_space(**changes)))


def test_searching_only_dp_settings_shares_one_warm_start(write_space, synth_mimic):
    spec, plan = _plan(write_space, synth_mimic, training={"public_warm_lr": 5e-3})
    config, why_not = shared_warm_config(spec, plan, targets=list(spec.epsilons))
    assert why_not == "" and config is not None  # lr, clip, σ searched: none of them read by the warm start
    assert config.public_warm_lr == 5e-3


@pytest.mark.parametrize(("search", "training", "reason"), [
    ({}, {}, r"searches lr, which the warm start reads \(set training.public_warm_lr"),  # trials' own lr
    ({"rank": {"dist": "choice", "values": [2, 4]}}, {"public_warm_lr": 5e-3}, "searches rank"),
    ({"batch_size": {"dist": "choice", "values": [32, 64]}}, {"public_warm_lr": 5e-3, "public_warm_batch_size": None},
     "searches batch_size"),
], ids=["lr", "rank", "batch-size-as-warm-batch"])
def test_a_searched_setting_the_warm_start_reads_gives_each_trial_its_own(write_space, synth_mimic, search,
                                                                         training, reason):
    spec, plan = _plan(write_space, synth_mimic, search=search, training=training)
    config, why_not = shared_warm_config(spec, plan, targets=list(spec.epsilons))
    assert config is None
    assert re.search(reason, why_not), why_not


def test_the_key_ignores_exactly_the_dp_phase(base_config):
    key = warm_start_key(base_config)
    assert warm_start_key(base_config.override(epsilon=1.0, clip=3.0, sigma=2.0, max_epochs=9.0, ema=0.9,
                                               full_batch=True)) == key
    assert warm_start_key(base_config.override(rank=base_config.rank + 1)) != key
    assert warm_start_key(base_config.override(lr=base_config.lr * 2)) != key  # no public_warm_lr: lr is read
    fixed = base_config.override(public_warm_lr=1e-3)
    assert warm_start_key(fixed.override(lr=0.5)) == warm_start_key(fixed)
    assert not warm_start_reads("sigma", base_config) and warm_start_reads("head_lr", base_config)


@pytest.fixture
def base_config(tiny_model_dir, synth_mimic):
    from dpsweep.settings import TrialConfig

    return TrialConfig(dataset_format="mimic-cxr", data_path=str(synth_mimic), model=str(tiny_model_dir),
                       max_length=32, batch_size=32, physical_batch_size=32, max_steps=1, rank=2, lora_layers=1,
                       seed=0, accountant="rdp", epsilon=8.0, public_format="mimic-cxr",
                       public_path=str(synth_mimic), public_warm_steps=3, public_warm_batch_size=16)


def test_shared_weights_are_the_trials_own_warm_start(base_config, monkeypatch):
    """compute_warm_weights (the sweep's) gives what the trial's own warm start gives; a trial handed
    them trains from them and runs no warm start of its own."""
    corpus = load_corpus("mimic-cxr", base_config.data_path)
    shared = loop.compute_warm_weights(base_config, corpus, log=lambda _m: None)
    assert shared and all(not torch.equal(w, torch.zeros_like(w)) for w in shared.values())

    own, at_training = {}, {}
    real_warm_start, real_make_trainer = loop.warm_start, loop.make_trainer

    def recording_warm_start(model, *args, **kwargs):
        real_warm_start(model, *args, **kwargs)
        own.update(warm_state(model))

    def recording_make_trainer(model, *args, **kwargs):
        at_training.update(warm_state(model))
        return real_make_trainer(model, *args, **kwargs)

    monkeypatch.setattr(loop, "warm_start", recording_warm_start)
    monkeypatch.setattr(loop, "make_trainer", recording_make_trainer)
    loop.run_trial(base_config, corpus=corpus, log=lambda _m: None)
    assert set(own) == set(shared)
    for name in shared:  # the same process and threads: equal up to float summation order
        torch.testing.assert_close(own[name], shared[name], rtol=1e-4, atol=1e-6)

    def no_warm_start(*_args, **_kwargs):
        raise AssertionError("a trial handed the sweep's warm start ran its own")

    monkeypatch.setattr(loop, "warm_start", no_warm_start)
    at_training.clear()
    handed = {name: w + 0.5 for name, w in shared.items()}  # distinguishable from any warm start
    loop.run_trial(base_config, corpus=corpus, log=lambda _m: None, warm_weights=handed)
    for name in handed:
        torch.testing.assert_close(at_training[name], handed[name], rtol=0, atol=0)


@pytest.mark.ray
def test_a_sweep_runs_the_warm_start_once(write_space, tmp_path, synth_mimic, capfd):
    from dpsweep.results import ResultStore
    from dpsweep.sweep.runner import run_sweep
    from tests.sweep.conftest import tiny_space

    space = write_space(privacy={"epsilons": [8], "delta": 1e-5}, trials_per_target=2,
                        public_data={"format": "mimic-cxr", "path": str(synth_mimic)},
                        training={**PUBLIC_TRAINING, "public_warm_lr": 5e-3},
                        search={**tiny_space("", "", store="")["search"], "rank": 2})
    spec, plan = inspect_sweep(load_spec(space))
    messages: list[str] = []
    outcome = run_sweep(spec, plan, sweep_id="warm", store=ResultStore(spec.store), runs_dir=str(tmp_path / "runs"),
                        log=messages.append)
    rows = ResultStore(spec.store).read("tiny-mimic").to_pylist()
    assert outcome.rows_written == 2 and all(r["status"] == "completed" for r in rows), rows
    assert all(r["public_warm_steps"] == 3 and r["public_warm_lr"] == 5e-3 for r in rows)
    once = [m for m in messages if m.startswith("warm start: ")]
    assert len(once) == 1 and "computed once for every trial" in once[0], messages
    trial_output = capfd.readouterr().err
    assert trial_output.count("warm start: the sweep's (3 non-private steps") == 2, trial_output[-2000:]
    assert "runs its own warm start" not in trial_output
