"""One declaration of a trial's settings: flags, YAML routing, search set, bounds and columns."""

from __future__ import annotations

import argparse
import math

import pytest

from dpsweep.errors import ConfigError
from dpsweep.settings import (
    SETTINGS,
    TrialConfig,
    add_setting_flags,
    choices,
    read_yaml,
    searchable,
    store_columns,
    yaml_home,
)


def test_every_flagged_setting_is_a_train_flag_and_parses_to_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    flags = {a.dest for a in parser._actions if a.dest != "help"}
    assert flags == {n for n, s in SETTINGS.items() if s.flag}
    args = parser.parse_args(["--epsilon", "inf", "--rank", "4", "--head-clip-share", "0.3", "--clipping", "flat"])
    config = TrialConfig().override(**{k: getattr(args, k) for k in flags})
    assert math.isinf(config.epsilon) and config.rank == 4 and config.head_clip_share == 0.3
    assert config.clipping == "flat"


def test_closed_choices_come_from_the_types() -> None:
    assert choices("pooling") == ("mean", "cls", "last")
    assert choices("accountant") == ("prv", "rdp")
    from dpsweep.data.types import SECTIONS, UNCERTAIN_POLICIES

    assert choices("sections") == SECTIONS and choices("uncertain_policy") == UNCERTAIN_POLICIES


def test_accountant_choices_are_opacus_accountants_dpsweep_knows() -> None:
    from dpsweep.privacy import Accountant

    assert set(choices("accountant")) <= {a.value for a in Accountant}


def test_searchable_sets() -> None:
    assert set(searchable(private=False)) == {"rank", "lr", "head_lr", "method", "pos_weight", "ema",
                                              "public_warm_steps", "public_warm_batch_size", "public_warm_lr"}
    assert {"rank", "lr", "clip", "sigma", "batch_size", "max_epochs", "head_lr", "head_clip_share"} <= set(
        searchable())


def test_yaml_homes() -> None:
    assert yaml_home("dataset_format") == ("dataset", "format")
    assert yaml_home("model") == ("model", "path")
    assert yaml_home("delta") == ("privacy", "delta")
    assert yaml_home("head_lr") == ("training", "head_lr")


@pytest.mark.parametrize("key, value, words", [
    ("lr", float("nan"), "finite"),
    ("lr", float("inf"), "finite"),
    ("head_lr", -1.0, "out of range"),
    ("clip", float("inf"), "finite"),
    ("seed", 2**70, "out of range"),
    ("rank", 1_000_000_000, "out of range"),
    ("weight_decay", -1.0, "out of range"),
    ("eval_batch_size", 0, "out of range"),
    ("max_epochs", float("inf"), "finite"),
    ("max_epochs", 1e300, "out of range"),
    ("sigma", 1e-300, "out of range"),
    ("delta", 1e-300 * 0, "out of range"),
    ("pooling", "max", "one of mean, cls, last"),
    ("epsilon", 0.0, "out of range"),
    ("epsilon", 1e12, "0 < value <= 100 must hold"),  # beyond it the accountants exhaust memory
    ("rank", 2.5, "integer"),
])
def test_bad_values_are_one_line_errors_naming_the_setting(key, value, words) -> None:
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_mapping({key: value}, source="t.yaml")
    message = str(err.value)
    assert key in message and words in message and "\n" not in message


def test_ghost_needs_flat_clipping() -> None:
    with pytest.raises(ConfigError, match="--clipping flat"):
        TrialConfig(grad_sample_mode="ghost")
    assert TrialConfig(grad_sample_mode="ghost", clipping="flat").clipping == "flat"


def test_store_columns_are_typed_settings() -> None:
    columns = {name: kind for name, kind, _ in store_columns()}
    assert columns["rank"] == "int" and columns["head_lr"] == "float" and columns["clipping"] == "string"
    assert "data_path" not in columns and "epsilon" not in columns  # ledger holds epsilon_target


def test_yaml_duplicate_keys_are_refused(tmp_path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("privacy:\n  delta: 1.0e-5\nprivacy:\n  delta: 1.0e-6\n")
    with pytest.raises(ConfigError, match="'privacy' is given twice"):
        read_yaml(path)


def test_non_utf8_config_is_one_line(tmp_path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("rank: 8 # r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        TrialConfig.from_yaml(path)


def test_config_json_round_trip_keeps_inf() -> None:
    config = TrialConfig(epsilon=math.inf, lora_targets=("query",))
    again = TrialConfig.from_mapping(config.to_dict())
    assert again == config


def test_settings_reference_is_up_to_date() -> None:
    from pathlib import Path

    from dpsweep.settings import settings_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "SETTINGS.md"
    assert doc.read_text(encoding="utf-8") == settings_markdown(), (
        "regenerate with: python -c 'from dpsweep.settings import write_settings_markdown as w; w()'")
