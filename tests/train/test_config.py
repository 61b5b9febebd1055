"""Trial config: typed, validated, unknown keys refused with the nearest valid key."""

from __future__ import annotations

import math

import pytest

from dpsweep.errors import ConfigError
from dpsweep.train import TrialConfig


def test_unknown_key_names_nearest_valid_key(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("epsilon: 8\nlearning_rate: 0.01\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'.*'lr'") as exc:
        TrialConfig.from_yaml(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_inf_and_numbers_parse_from_yaml(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("epsilon: inf\ndelta: 1e-6\nrank: 4\nlora_targets: [query, value]\n")
    c = TrialConfig.from_yaml(path)
    assert math.isinf(c.epsilon) and not c.private and c.delta == 1e-6 and c.rank == 4
    assert c.lora_targets == ("query", "value")


def test_round_trip_through_dict():
    c = TrialConfig(epsilon=math.inf, sigma=1.2, data_path="x")
    assert TrialConfig.from_mapping(c.to_dict()) == c


def test_override_ignores_none_and_revalidates():
    c = TrialConfig().override(rank=None, lr=0.1)
    assert c.lr == 0.1 and c.rank == TrialConfig().rank
    with pytest.raises(ConfigError, match="rank"):
        TrialConfig().override(rank=0)


@pytest.mark.parametrize("key,value", [("epsilon", 0.0), ("epsilon", -1.0), ("delta", 1.5), ("clip", 0.0),
                                       ("sigma", -0.1), ("rank", 0), ("accountant", "gdp"),
                                       ("grad_sample_mode", "fast"), ("clipping", "per_sample"),
                                       ("head_clip_share", 0.0), ("head_clip_share", 1.0)])
def test_out_of_range_values_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        TrialConfig(**{key: value})


def test_ghost_mode_needs_flat_clipping():
    with pytest.raises(ConfigError, match="pass --clipping flat with --grad-sample-mode ghost"):
        TrialConfig(grad_sample_mode="ghost")
    assert TrialConfig(grad_sample_mode="ghost", clipping="flat").clipping == "flat"
