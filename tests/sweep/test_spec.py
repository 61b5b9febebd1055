"""Search-space files: what is accepted, and one-line errors naming file, field and fix."""

from __future__ import annotations

import math

import pytest
import yaml

from dpsweep.errors import ConfigError
from dpsweep.sweep import load_spec, spec_from_mapping
from tests.sweep.conftest import tiny_space

SHIPPED = ["quickstart", "quickstart-release", "mimic-cxr", "ct-rate", "ct-clip-text"]


def _spec(tmp_path, **changes):
    return spec_from_mapping(tiny_space(tmp_path, tmp_path, store=tmp_path / "s", **changes), source="s.yaml")


def test_spec_resolves_sections(tmp_path):
    spec = _spec(tmp_path)
    assert spec.epsilons == (3.0, 8.0, math.inf)
    assert spec.base.max_length == 32 and spec.base.lora_layers == 1 and spec.base.batch_size == 64
    assert spec.base.head_lr == 0.1 and spec.dataset_name == "tiny-mimic"
    assert [p.key for p in spec.params] == ["rank", "lr", "clip", "sigma"]
    assert [p.key for p in spec.params_for(math.inf)] == ["rank", "lr"]  # baseline: rank and lr only
    assert spec.total_trials == 6 and spec.sampler == "tpe"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_validate(name):
    spec = load_spec(f"search_spaces/{name}.yaml")
    assert math.inf in spec.epsilons and len(spec.epsilons) >= 2


@pytest.mark.parametrize("changes, field, fix", [
    (dict(privacy={"epsilons": []}), "privacy.epsilons", "non-empty list"),
    (dict(privacy={"epsilons": [8, -1]}), "privacy.epsilons", "> 0"),
    (dict(privacy={"epsilons": [8, "eight"]}), "privacy.epsilons", "not a number"),
    (dict(privacy={"epsilons": [8], "detla": 1e-5}), "privacy.detla", "did you mean 'delta'"),
    (dict(search={"lr": {"dist": "loguniform", "low": 1e-2, "high": 1e-3}}), "search.lr", "low <= high"),
    (dict(search={"lr": {"dist": "normal", "low": 1, "high": 2}}), "search.lr.dist", "loguniform"),
    (dict(search={"rank": {"dist": "uniform", "low": 2, "high": 8}}), "search.rank.dist", "dist: int"),
    (dict(search={"sigma": {"dist": "uniform", "low": -1, "high": 2}}), "search.sigma", "pass --sigma with"),
    (dict(search={"learning_rate": 1e-3}), "search.learning_rate", "valid keys"),
    (dict(sampler={"name": "grid"}), "sampler.name", "tpe"),
    (dict(resources={"cpus_per_worker": 0}), "resources.cpus_per_worker", "refuses 0 CPUs"),
    (dict(trials_per_target=0), "trials_per_target", ">= 1"),
    (dict(dataset={"format": "dicom", "path": "x"}), "dataset.format", "mimic-cxr"),
    (dict(dataset={"path": "x"}), "dataset.format", "is missing"),
    (dict(training={"max_length": 64}), "training.max_length", "dataset.max_length sets already; keep one"),
    (dict(training={"delta": 1e-6}), "training.delta", "privacy.delta sets already"),
    (dict(name="my sweep!"), "name", "letters, digits"),
    (dict(resources={"cpus_per_worker": "1"}), "resources.cpus_per_worker", "a number > 0"),
    (dict(resources={"gpus_per_worker": None}), "resources.gpus_per_worker", "a number from 0"),
    (dict(resources={"workers_per_trial": True}), "resources.workers_per_trial", "an integer from 1"),
    (dict(dataset={"format": ["mimic-cxr"], "path": "x"}), "dataset.format", "a string"),
    (dict(dataset={"format": "mimic-cxr", "path": [1, 2]}), "dataset.path", "a string"),
])
def test_bad_spaces_name_file_field_and_fix(tmp_path, changes, field, fix):
    with pytest.raises(ConfigError) as err:
        _spec(tmp_path, **changes)
    message = str(err.value)
    assert message.startswith(f"s.yaml: {field}") and fix in message and "\n" not in message


@pytest.mark.parametrize("store", [["a", "b"], 3, "", {"path": "x"}])
def test_store_must_be_one_folder(tmp_path, store):
    space = {**tiny_space(tmp_path, tmp_path, store=tmp_path / "s"), "store": store}
    with pytest.raises(ConfigError, match="s.yaml: store: must be one folder or URI"):
        spec_from_mapping(space, source="s.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_spec(bad)


def _tuning_space(tmp_path, **changes):
    space = tiny_space(tmp_path, tmp_path, store=tmp_path / "s")
    space["privacy"]["tuning"] = {"method": "random-stopping", "distribution": "geometric", "mean_trials": 3}
    space["search"] = {"rank": {"dist": "choice", "values": [2, 4]}, "lr": 1e-3, "sigma": 1.0,
                       "batch_size": 64, "max_epochs": 2}
    space["sampler"] = {"name": "random"}
    del space["trials_per_target"]
    for key, value in changes.items():
        space[key] = value
    return space


def test_random_stopping_spec(tmp_path):
    spec = spec_from_mapping(_tuning_space(tmp_path), source="s.yaml")
    assert spec.tuning.distribution == "geometric" and spec.tuning.mean_trials == 3.0
    assert spec.tuning.target == "trial" and spec.sampler == "random"


@pytest.mark.parametrize("changes, field, words", [
    (dict(sampler={"name": "tpe"}), "sampler.name", "adaptive searcher"),
    (dict(trials_per_target=4), "trials_per_target", "drawn at random"),
    (dict(search={"sigma": {"dist": "uniform", "low": 0.5, "high": 2.0}, "lr": 1e-3}), "search.sigma",
     "must be fixed"),
])
def test_random_stopping_refuses_what_the_theorem_does_not_cover(tmp_path, changes, field, words):
    with pytest.raises(ConfigError) as err:
        spec_from_mapping(_tuning_space(tmp_path, **changes), source="s.yaml")
    assert str(err.value).startswith(f"s.yaml: {field}") and words in str(err.value)


def test_random_stopping_bad_distribution(tmp_path):
    space = _tuning_space(tmp_path)
    space["privacy"]["tuning"]["distribution"] = "uniform"
    with pytest.raises(ConfigError, match="privacy.tuning.distribution"):
        spec_from_mapping(space, source="s.yaml")
