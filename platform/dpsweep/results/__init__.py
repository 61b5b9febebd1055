"""Results of every trial: a Parquet store, Pareto fronts, queries, plots and a report.

Depends on pyarrow, numpy and the standard library only (matplotlib for plots and
PyYAML for config export are imported where used), so it can be imported without torch
or Ray. See ``SCHEMA.md`` for the row layout.
"""

from __future__ import annotations

from dpsweep.results.pareto import pareto_front
from dpsweep.results.queries import (
    best_non_private,
    best_under_budget,
    compare_datasets,
    export_config,
    privacy_cost,
)
from dpsweep.results.report import write_report
from dpsweep.results.schema import COLUMN_DOCS, FILE_SCHEMA, SCHEMA, SCHEMA_VERSION
from dpsweep.results.store import DEFAULT_STORE, ResultStore, StoreWarning

__all__ = [
    "COLUMN_DOCS",
    "DEFAULT_STORE",
    "FILE_SCHEMA",
    "SCHEMA",
    "SCHEMA_VERSION",
    "ResultStore",
    "StoreWarning",
    "best_non_private",
    "best_under_budget",
    "compare_datasets",
    "export_config",
    "pareto_front",
    "privacy_cost",
    "write_report",
]
