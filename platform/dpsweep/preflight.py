"""Checks made before any data, model or Ray is touched, so no trained trial is thrown away.

`dpsweep train --store` and `dpsweep sweep` call :func:`check_store_target` first: the
results store takes a row (created and test-written), and the names that become part of
its file names (dataset, sweep id) follow the store's rules. :func:`check_trial_model`
reads the model's config.json (no weights) so settings the model cannot take are refused
too. Each refusal is one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dpsweep.errors import UserInputError

CSV_FORMAT = "csv"  # dpsweep.data.labelled_csv.FORMAT: its corpus is named after the data folder


def expected_dataset_name(dataset_format: str, data_path: str) -> tuple[str, str]:
    """(name, where it comes from) of the corpus the reader will return, without reading data."""
    if dataset_format == CSV_FORMAT and "://" not in data_path:
        return Path(data_path).expanduser().resolve().name, f"the name of the csv folder {data_path}"
    return dataset_format, "the data set format"


def check_dataset_for_store(name: str, *, source: str, fix: str) -> str:
    """``name`` if it can name a store partition, else one line naming ``source`` and ``fix``."""
    from dpsweep.results.validate import check_dataset_name

    try:
        return check_dataset_name(name)
    except UserInputError:
        raise UserInputError(f"the dataset name {name!r} ({source}) cannot name a results-store partition: it "
                             "must start with an ASCII letter, use only letters, digits, '.', '_' or '-', "
                             f"and not be inf, infinity or epoch; {fix}") from None


def check_store_target(store: str, *, dataset: str, ids: Mapping[str, str], create: bool = True) -> None:
    """Refuse a store no row could be written to, or ids it would refuse (``ids``: what -> value).

    ``create=False`` (a dry run) writes nothing: a local store's folder is only checked.
    """
    from dpsweep.results.store import ResultStore
    from dpsweep.results.validate import check_id

    for what, value in ids.items():
        check_id(value, what=what)
    ResultStore(store).check_writable(dataset=dataset, create=create)


def check_trial_model(config, *, source: str | None = None) -> None:
    """Refuse max_length, lora_layers or lora_targets the model cannot take (its config.json only).

    ``source``: the search-space file the settings came from (None: `dpsweep train`'s flags).
    """
    from dpsweep.model.limits import check_model_fits
    from dpsweep.settings import SETTINGS, flag_name, yaml_home

    def fix(name: str, value: str) -> str:
        if source is not None:
            section, key = yaml_home(name)
            return f"set {section}.{key} in {source} to {value}"
        if SETTINGS[name].flag:
            return f"pass --{flag_name(name)} {value}"
        return f"set {name} in the --config file to {value}"

    check_model_fits(config, fix=fix)
