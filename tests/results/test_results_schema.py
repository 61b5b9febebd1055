"""The schema is documented, versioned, and rows are validated before they are stored."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dpsweep.results.schema import (
    COLUMN_DOCS,
    FILE_SCHEMA,
    METADATA_KEY,
    SCHEMA,
    SCHEMA_VERSION,
    schema_markdown,
)
from dpsweep.results.validate import coerce_row
from dpsweep.settings import searchable, store_columns

REQUIRED_NAMES = {
    "schema_version", "sweep_id", "trial_id", "dataset", "dataset_format", "model", "status",
    "epsilon_target", "epsilon", "delta", "sigma", "clip", "sample_rate", "steps", "accountant",
    "rank", "lora_alpha", "lora_dropout", "lr", "batch_size", "epochs", "max_length", "seed",
    "weighted_f1", "macro_f1", "micro_f1", "auroc_macro", "weighted_f1_tuned", "macro_f1_tuned",
    "per_label_f1", "test_weighted_f1", "test_macro_f1", "n_train", "n_val", "train_seconds",
    "wall_seconds", "started_at", "dpsweep_version", "git_commit", "error", "config_json",
}


SETTING_NAMES = {name for name, _, _ in store_columns()}
PRIVACY_TRUTH_NAMES = {"privacy_unit", "noise", "epsilon_accountant", "epsilon_pld", "epsilon_patient",
                       "patient_records", "epsilon_scope", "epsilon_release", "released", "tuning_trials",
                       "model_uri"}
LEDGER_NAMES = {"epsilon_target", "epsilon", "delta", "sigma", "clip", "sample_rate", "steps", "accountant"}


def test_schema_has_every_documented_column_and_no_text_column() -> None:
    assert set(SCHEMA.names) == REQUIRED_NAMES | SETTING_NAMES | PRIVACY_TRUTH_NAMES
    assert {"head_lr", "head_clip_share", "max_epochs", "clipping", "pooling"} <= SETTING_NAMES
    assert set(COLUMN_DOCS) == set(SCHEMA.names) and all(COLUMN_DOCS.values())
    assert not [n for n in SCHEMA.names if "text" in n or "report" in n]
    assert SCHEMA.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert SCHEMA.field("steps").type == pa.int64() and SCHEMA.field("epochs").type == pa.float64()
    assert "dataset" not in FILE_SCHEMA.names
    assert SCHEMA.metadata[METADATA_KEY] == str(SCHEMA_VERSION).encode()


def test_schema_markdown_file_is_up_to_date() -> None:
    import dpsweep.results as results

    path = Path(results.__file__).with_name("SCHEMA.md")
    assert path.read_text(encoding="utf-8") == schema_markdown(), (
        "regenerate: python -c 'import dpsweep.results.schema as s; s.write_schema_markdown()'")


def test_coerce_fills_defaults_and_types(make_row) -> None:
    row = coerce_row(make_row(steps=500.0, epsilon="0.5", trial_id=7, started_at="2025-01-01T00:00:00Z"))
    assert row["steps"] == 500 and isinstance(row["steps"], int)
    assert row["epsilon"] == 0.5 and row["trial_id"] == "7"
    assert row["schema_version"] == SCHEMA_VERSION and row["dpsweep_version"]
    assert row["started_at"].utcoffset().total_seconds() == 0
    assert row["test_macro_f1"] is None
    assert row["per_label_f1"] == '{"Edema": 0.7, "Pneumonia": 0.5}'


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"report_text": "no acute findings"}, "report_text"),
        ({"text": "x"}, "text"),
        ({"Findings_Report": "x"}, "Findings_Report"),
        ({"unknown_column": 1}, "unknown_column"),
        ({"status": "done"}, "status"),
        ({"weighted_f1": 1.5}, "weighted_f1"),
        ({"weighted_f1": math.nan}, "weighted_f1"),
        ({"steps": True}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"lr": "fast"}, "lr"),
        ({"started_at": datetime(2025, 1, 1)}, "started_at"),
        ({"trial_id": "a/b"}, "trial_id"),
        ({"sweep_id": "a__b"}, "sweep_id"),
        ({"dataset": "2024"}, "dataset"),
        ({"dataset": "Infinity"}, "dataset"),
        ({"config_json": "[1, 2]"}, "config_json"),
        ({"per_label_f1": {"Edema": 2.0}}, "per_label_f1"),
        ({"sigma": None}, "sigma"),  # completed private rows carry the privacy ledger
        ({"epsilon": math.inf}, "epsilon"),  # finite target, infinite spend
        ({"weighted_f1": None}, "weighted_f1"),
        ({"model": None}, "model"),
        ({"schema_version": SCHEMA_VERSION + 1}, "schema_version"),
    ],
)
def test_bad_rows_raise_value_error_naming_the_field(make_row, overrides, field) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        coerce_row(make_row(**overrides))


def test_non_completed_rows_may_lack_metrics_and_error_is_truncated(make_row) -> None:
    row = coerce_row(make_row(status="failed", epsilon=None, weighted_f1=None, macro_f1=None,
                              error="RuntimeError: " + "x" * 2000))
    assert row["weighted_f1"] is None and len(row["error"]) == 500


def test_reserved_dataset_names_are_exactly_the_ones_duckdb_autocasts(tmp_path) -> None:
    """Names DuckDB's hive autocast would turn into non-strings must be refused, others not."""
    for name in ["inf", "Infinity", "epoch", "mimic-cxr", "ct-rate", "nan", "true", "e5", "a1"]:
        part = tmp_path / name / f"dataset={name}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), part / "a.parquet")
        kind = duckdb.sql(f"select dataset from read_parquet('{tmp_path / name}/**/*.parquet', "
                          "hive_partitioning=1)").types[0]
        refused = name.lower() in {"inf", "infinity", "epoch"}
        assert (str(kind) != "VARCHAR") == refused, name


def test_every_searchable_setting_is_a_store_column() -> None:
    """A searched value is stored as a column of its own or as a privacy-ledger column."""
    for name in searchable():
        column = "epsilon_target" if name == "epsilon" else name
        assert column in SETTING_NAMES | LEDGER_NAMES, name
        assert column in SCHEMA.names
