"""A sweep computes the frozen layers once per depth its trials may need, and each trial reuses its own.

method searched over {lora (lora_layers=1), head} on the 2-layer tiny BERT: lora caches layer 0
(depth 1), head both layers (depth 2); linear, or LoRA on every layer, caches nothing.
"""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest

from dpsweep.sweep.runner import inspect_sweep, prefix_depths
from dpsweep.sweep.spec import load_spec
from dpsweep.train.batches import encode
from dpsweep.train.loop import cache_prefix, prefix_origin, run_trial, trial_model

METHODS = {"method": {"dist": "choice", "values": ["lora", "head"]}}


def _spec(write_space, *, search=None, model=None, training=None, public=False):
    from tests.sweep.conftest import tiny_space

    changes = {}
    if search is not None or model is not None or training is not None:
        base = tiny_space("", "", store="")
        if search is not None:
            changes["search"] = {**base["search"], **search}
        if model is not None:
            changes["model"] = model
        if training is not None:
            changes["training"] = {**base["training"], **training}
    return inspect_sweep(load_spec(write_space(**changes)))


@pytest.mark.parametrize(("search", "model", "training", "expected"), [
    (METHODS, None, None, {1: ("lora (lora_layers=1)",), 2: ("head",)}),
    ({"method": {"dist": "choice", "values": ["bitfit", "head"]}}, None, None,
     {1: ("bitfit (lora_layers=1)",), 2: ("head",)}),
    (None, None, None, {1: ("lora (lora_layers=1)",)}),  # method not searched: the base alone, as before
    ({"method": {"dist": "choice", "values": ["lora", "bitfit"]}}, {"lora_layers": 2}, None, {}),  # n - k = 0
    (METHODS, None, {"prefix_cache": False}, {}),
], ids=["lora-head", "bitfit-head", "base-only", "every-layer-adapted", "cache-off"])
def test_the_sweep_lists_exactly_the_depths_its_trials_can_use(write_space, tiny_model_dir, search, model,
                                                                training, expected):
    if model is not None:
        model = {"path": str(tiny_model_dir), **model}
    spec, plan = _spec(write_space, search=search, model=model, training=training)
    depths = prefix_depths(spec, plan, targets=list(spec.epsilons), num_layers=2)
    assert {d: serves for d, (_, serves) in depths.items()} == expected
    assert all(config.method == ("head" if d == 2 else config.method) for d, (config, _) in depths.items())


def test_linear_and_head_need_only_the_top_layer_features(write_space, tiny_model_dir, synth_mimic):
    """The shipped ct-clip-text space: method {linear, head} needs one depth, all layers."""
    from tests.sweep.conftest import tiny_space

    search = {**tiny_space("", "", store="")["search"], "method": {"dist": "choice", "values": ["linear", "head"]}}
    space = write_space(search=search, model={"path": str(tiny_model_dir)},
                        public_data={"format": "mimic-cxr", "path": str(synth_mimic)})  # linear's vocabulary
    spec, plan = inspect_sweep(load_spec(space))
    depths = prefix_depths(spec, plan, targets=list(spec.epsilons), num_layers=2)
    assert {d: serves for d, (_, serves) in depths.items()} == {2: ("head",)}


@pytest.fixture
def ray_session():
    import ray

    folder = tempfile.mkdtemp(prefix="rp", dir="/tmp")  # short: Ray's socket paths
    ray.init(address="local", num_cpus=2, _temp_dir=folder, include_dashboard=False)
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def _cached_model(config, corpus, states):
    model, tokenizer = trial_model(config, num_labels=len(corpus.label_names))
    train = encode(corpus.train, tokenizer, max_length_tokens=config.max_length)
    cache_prefix(model, train, config, log=lambda _m: None, states=states)
    return model


@pytest.mark.ray
def test_each_depth_is_computed_once_and_trials_reuse_the_stores_of_theirs(ray_session, write_space, tmp_path,
                                                                          monkeypatch):
    import dpsweep.model.prefix
    from dpsweep.sweep.runner import _shared_prefix

    spec, plan = _spec(write_space, search=METHODS)
    messages: list[str] = []
    prefix = _shared_prefix(spec, plan, plan.corpus, messages.append, runs_dir=str(tmp_path / "runs"),
                            sweep_id="s", targets=list(spec.epsilons))
    assert [(s.depth, s.serves, s.paths) for s in prefix.shares] == [(1, ("lora (lora_layers=1)",), ()),
                                                                     (2, ("head",), ())]
    computed = [m for m in messages if m.startswith("computed frozen layers")]
    assert len(computed) == 2, messages
    assert "(depth 1) for the lora (lora_layers=1) trials" in computed[0] and "in memory" in computed[0]
    assert "(depth 2) for the head trials" in computed[1]
    assert f"{len(plan.corpus.train)} reports" in computed[1]

    base = spec.base_for(8.0).override(sigma=1.0, max_epochs=1.0, noise="reproducible")
    for method, depth in (("lora", 1), ("head", 2)):
        config = base.override(method=method)
        states = prefix.states_for(config)
        assert [s.depth for s in states] == [depth]
        shared = _cached_model(config, plan.corpus, states)
        own = _cached_model(config, plan.corpus, None)
        assert prefix_origin(shared, states) == f"shared (depth {depth})"
        assert shared.prefix_cache.stores == states  # the very stores, not a copy
        assert prefix_origin(own, None) == f"computed (depth {depth})"
        # bit for bit what the trial computes itself (same batches, same process)
        assert [np.array_equal(a.data, b.data) for a, b in zip(own.prefix_cache.stores, states, strict=True)] == [True]

    head = base.override(method="head")
    with_shared = run_trial(head, corpus=plan.corpus, prefix_states=prefix.states_for(head), log=lambda _m: None)
    alone = run_trial(head, corpus=plan.corpus, log=lambda _m: None)
    assert with_shared.val == alone.val and with_shared.thresholds == alone.thresholds

    # Both depths together against the in-memory budget: the first fits, the second is memory-mapped
    monkeypatch.setattr(dpsweep.model.prefix, "MEMORY_BUDGET_BYTES", prefix.shares[0].nbytes)
    messages.clear()
    split = _shared_prefix(spec, plan, plan.corpus, messages.append, runs_dir=str(tmp_path / "runs"),
                           sweep_id="s2", targets=list(spec.epsilons))
    assert split.shares[0].paths == () and len(split.shares[1].paths) == 1
    assert split.shares[1].paths[0].startswith(str(tmp_path / "runs" / "prefix-cache" / "s2"))
    assert "memory-mapped at" in [m for m in messages if "(depth 2)" in m][0]
    mapped = split.states_for(head)
    assert mapped[0].path and np.array_equal(np.asarray(mapped[0].data), prefix.states_for(head)[0].data)
