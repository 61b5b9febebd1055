"""Settings the model cannot take are refused from its config.json, before data or weights are read."""

from __future__ import annotations

import time

import pytest

from dpsweep.cli import main
from dpsweep.errors import ConfigError
from dpsweep.model.limits import check_model_fits, model_shape, module_kinds
from dpsweep.settings import TrialConfig
from tests.conftest import tiny_backbone, tiny_config


def _fix(name: str, value: str) -> str:
    return f"set {name} to {value}"


@pytest.mark.parametrize("arch,positions", [("bert", 256), ("albert", 256), ("llama", 256),
                                            ("roberta", 255)])  # RoBERTa's positions start after pad (0)
def test_shape_from_config(arch, positions):
    shape = model_shape(tiny_config(arch))
    assert (shape.model_type, shape.positions, shape.layers) == (arch, positions, 2)


@pytest.mark.parametrize("arch", ["bert", "roberta", "llama"])
def test_meta_device_module_names_are_the_real_models(arch):
    """The meta-device build lists the same modules as a real one, and costs no weights."""
    started = time.perf_counter()
    kinds = module_kinds(tiny_config(arch))
    assert time.perf_counter() - started < 60  # seconds, on a busy 2-core box (about 1 s alone)
    real = {name: type(m).__name__ for name, m in tiny_backbone(arch).named_modules() if name}
    assert kinds == real


def _config(model_dir, **changes) -> TrialConfig:
    return TrialConfig(data_path="unused", model=str(model_dir), **changes)


def test_settings_within_the_model_pass(tiny_model_dir):
    check_model_fits(_config(tiny_model_dir, max_length=256, lora_layers=2, lora_targets=("query", "dense")),
                     fix=_fix)


@pytest.mark.parametrize("changes,rule", [
    ({"max_length": 257}, "max_length = 257 is more than model .* takes \\(256 token positions\\); set "
                          "max_length to 256 or less"),
    ({"lora_layers": 3}, "lora_layers = 3 is more than model .* has \\(2 layers\\); set lora_layers to 2"),
    ({"lora_targets": ("q_proj",)}, "lora_targets names 'q_proj', but model .* has no module of that name; "
                                    "set lora_targets to names among: dense, key, .*query"),
    ({"lora_targets": ("query", "attention")}, "'attention', a BertAttention in model .* which LoRA cannot wrap"),
    ({"lora_targets": ("layer",)}, "'layer', a ModuleList"),
])
def test_settings_beyond_the_model_are_refused(tiny_model_dir, changes, rule):
    with pytest.raises(ConfigError, match=rule):
        check_model_fits(_config(tiny_model_dir, **changes), fix=_fix)


def _train(tiny_model_dir, tmp_path, *extra: str) -> list[str]:
    return ["train", "--dataset-format", "mimic-cxr", "--data-path", str(tmp_path / "no-data"),
            "--model", str(tiny_model_dir), *extra]


@pytest.mark.parametrize("extra,named", [
    (["--max-length", "1024"], "pass --max-length 256 or less"),
    (["--lora-layers", "100"], "pass --lora-layers 2 or less"),
])
def test_train_refuses_before_reading_data(tiny_model_dir, tmp_path, capsys, extra, named):
    """The data path does not exist: had the data been read first, its error would be the line."""
    assert main(_train(tiny_model_dir, tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err and "no-data" not in err, err


def test_train_config_targets_are_checked(tiny_model_dir, tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text("lora_targets: [nonexistent]\n", encoding="utf-8")
    assert main([*_train(tiny_model_dir, tmp_path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "'nonexistent'" in err and "in the --config file" in err and "no-data" not in err, err


@pytest.mark.parametrize("model_yaml,named", [
    ("lora_targets: [nonexistent]", "set model.lora_targets in"),
    ("lora_layers: 100", "set model.lora_layers in"),
])
def test_sweep_dry_run_refuses_before_reading_data(tiny_model_dir, tmp_path, capsys, model_yaml, named):
    space = tmp_path / "space.yaml"
    space.write_text(f"name: t\ndataset: {{format: mimic-cxr, path: {tmp_path / 'no-data'}}}\n"
                     f"model: {{path: {tiny_model_dir}, {model_yaml}}}\nprivacy: {{epsilons: [8]}}\n"
                     f"search: {{lr: 0.01}}\nstore: {tmp_path / 'store'}\n", encoding="utf-8")
    assert main(["sweep", "--dry-run", str(space)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err and "no-data" not in err, err
