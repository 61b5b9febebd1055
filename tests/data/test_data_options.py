"""DataOptions validation, the format registry, Split and Corpus basics."""

from __future__ import annotations

import numpy as np
import pytest

from dpsweep.data import FORMATS, Corpus, DataOptions, FormatRegistry, Split
from dpsweep.errors import ConfigError, DataError


def test_defaults() -> None:
    options = DataOptions()
    assert (options.sections, options.uncertain_policy, options.val_fraction, options.seed) == (
        "both",
        "zeros",
        0.2,
        0,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sections", "summary"),
        ("uncertain_policy", "maybe"),
        ("val_fraction", 0.0),
        ("val_fraction", 0.9),
        ("val_fraction", float("nan")),
        ("val_fraction", True),
        ("val_fraction", "0.2"),
        ("seed", -1),
        ("seed", 1.5),
    ],
)
def test_bad_options_raise_one_line_config_errors(field, value) -> None:
    with pytest.raises(ConfigError) as err:
        DataOptions(**{field: value})
    assert field in str(err.value) and "\n" not in str(err.value)


def test_registry_rejects_duplicates_and_names_unknown_formats() -> None:
    registry = FormatRegistry()
    registry.register("x", lambda path, options: None, layout="a folder")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", lambda path, options: None, layout="a folder")
    with pytest.raises(DataError, match=r"unknown data format 'y'; use one of: x"):
        registry.get("y")
    assert "x" in registry and list(registry) == ["x"] and len(registry) == 1


def test_builtin_formats() -> None:
    assert FORMATS.names() == ("csv", "ct-rate", "mimic-cxr")
    assert callable(FORMATS["mimic-cxr"])


def test_split_shapes_are_checked_and_take_selects_rows() -> None:
    split = Split(
        texts=["a", "b", "c"],
        labels=[[1, 0], [0, 1], [1, 1]],
        mask=np.ones((3, 2)),
        groups=["p1", "p1", "p2"],
    )
    assert split.labels.dtype == np.float32 and split.mask.dtype == bool and len(split) == 3
    picked = split.take(np.array([False, True, True]))
    assert picked.texts == ["b", "c"] and picked.groups == ["p1", "p2"]
    with pytest.raises(ValueError):
        Split(texts=["a"], labels=np.zeros((2, 2)), mask=np.ones((2, 2), bool), groups=["g"])
    with pytest.raises(ValueError):
        Corpus(name="n", format="csv", label_names=("A",), train=split, val=split)
