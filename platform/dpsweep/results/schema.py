"""The versioned schema of one results row: one row per trial, no report text, ever.

Why a fixed, documented schema: the store is read by this package, by pandas, by DuckDB
and by people; every row carries the privacy ledger (σ, q, steps, δ, accountant) next to
its ε so any ε can be recomputed, and the full resolved config so any trial can be re-run.

Layout decisions (tested in ``tests/results``):

* ``dataset`` is the hive partition key (``STORE/dataset=<name>/...``) and is NOT stored
  inside the Parquet files. pandas fails to merge a partition column that also lives in
  the file ("string vs dictionary<...>"), and pyarrow fails when the partition value looks
  numeric. Dataset names therefore must start with a letter and must not be a word
  DuckDB's hive autocast turns into a date (``inf``, ``infinity``, ``epoch``).
* ``per_label_f1`` is a JSON object string (label -> F1), not a Parquet map: a string
  reads the same in pyarrow, pandas (a ``str``) and DuckDB (``per_label_f1->>'Edema'``).
* ``config_json`` is written by Python's ``json.dumps``; a non-private config holding
  ``float('inf')`` appears as ``Infinity`` (Python's JSON extension), which keeps the
  config lossless for re-running.
* Non-private trials have ``epsilon_target = epsilon = +inf``.

Bump :data:`SCHEMA_VERSION` on any incompatible change; readers of version N ignore
unknown columns and fill missing nullable columns with null.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

SCHEMA_VERSION = 2
"""Version of the row layout, stored per row and in each file's Parquet metadata."""

METADATA_KEY = b"dpsweep.schema_version"
_SCHEMA_MD = Path(__file__).with_name("SCHEMA.md")
PARTITION_COLUMN = "dataset"
STATUSES = ("completed", "infeasible", "failed", "pruned")

_S, _I, _F = pa.string(), pa.int64(), pa.float64()
_TS = pa.timestamp("us", tz="UTC")

# (name, type, nullable, description). The single source for SCHEMA, COLUMN_DOCS and SCHEMA.md.
_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    # identity
    ("schema_version", pa.int32(), False, "Row layout version (SCHEMA_VERSION when written)."),
    ("sweep_id", _S, False, "Identifier of the sweep that ran the trial."),
    ("trial_id", _S, False, "Identifier of the trial, unique within its sweep."),
    ("dataset", _S, False, "Dataset name; the hive partition key (`dataset=<name>`), "
     "held in the directory name, not inside the file."),
    ("dataset_format", _S, False, "Reader that loaded the corpus (e.g. mimic-cxr, ct-rate, labelled-csv)."),
    ("model", _S, False, "Model name or local folder the classifier was built from."),
    ("status", _S, False, "One of completed, infeasible, failed, pruned."),
    # privacy ledger
    ("epsilon_target", _F, False, "ε budget the trial was calibrated for; +inf for non-private."),
    ("epsilon", _F, True, "ε actually spent (from sigma, sample_rate, steps, delta); +inf for non-private."),
    ("delta", _F, True, "δ of the (ε, δ) guarantee."),
    ("sigma", _F, True, "Noise multiplier σ (noise std / clip); 0 for non-private."),
    ("clip", _F, True, "Per-sample gradient clipping norm C."),
    ("sample_rate", _F, True, "Poisson sampling rate q (expected batch / n_train)."),
    ("steps", _I, True, "Optimizer steps taken (T)."),
    ("accountant", _S, True, "Privacy accountant that computed epsilon (e.g. prv, rdp)."),
    ("privacy_unit", _S, True, "What epsilon protects: `record` (one report) or `patient` (all of one "
     "patient's reports)."),
    ("noise", _S, True, "How DP noise and sampling were drawn: `secure` (OS-seeded, never stored) or "
     "`reproducible` (replayable from `seed`: not private; left out of fronts unless asked); `none` "
     "without DP."),
    ("epsilon_accountant", _F, True, "The Opacus accountant's epsilon for (sigma, sample_rate, steps, delta)."),
    ("epsilon_pld", _F, True, "dp-accounting's PLD epsilon for the same run (independent check); "
     "`epsilon` is the larger of the two."),
    ("epsilon_patient", _F, True, "Epsilon of one patient: `epsilon` at patient level; at record level the "
     "group bound for the patient with the most training reports (`patient_records`); null when unknown."),
    ("patient_records", _I, True, "Record level: the most training reports any one patient has (the group "
     "size of `epsilon_patient`)."),
    ("epsilon_scope", _S, True, "What `epsilon` covers: `trial` (this trial alone, excluding tuning) or "
     "`release` (random-stopping sweeps: the best trial of its target, tuning included, see "
     "`epsilon_release`)."),
    ("epsilon_release", _F, True, "Random-stopping sweeps: epsilon of releasing this target's best trial, "
     "the whole tuning process included (Papernot & Steinke 2022, RDP)."),
    ("released", _I, True, "Random-stopping sweeps: 1 for the trial released for its target, else 0."),
    ("tuning_trials", _I, True, "Trials of this sweep and target that touched the training data."),
    # hyperparameters: every setting declared as a store column in dpsweep.settings (below)
    ("epochs", _F, True, "Epochs actually trained (steps * sample_rate)."),
    # validation metrics (null unless completed)
    ("weighted_f1", _F, True, "Validation F1 weighted by label support, threshold 0.5."),
    ("macro_f1", _F, True, "Validation macro-averaged F1, threshold 0.5."),
    ("micro_f1", _F, True, "Validation micro-averaged F1, threshold 0.5."),
    ("auroc_macro", _F, True, "Validation macro-averaged AUROC."),
    ("weighted_f1_tuned", _F, True, "Weighted F1 with per-label thresholds tuned on validation."),
    ("macro_f1_tuned", _F, True, "Macro F1 with per-label thresholds tuned on validation."),
    ("per_label_f1", _S, True, "JSON object string: label name -> validation F1 (threshold 0.5)."),
    ("test_weighted_f1", _F, True, "Test-split weighted F1, when a test split was evaluated."),
    ("test_macro_f1", _F, True, "Test-split macro F1, when a test split was evaluated."),
    # data sizes and timings
    ("n_train", _I, True, "Training examples."),
    ("n_val", _I, True, "Validation examples."),
    ("train_seconds", _F, True, "Seconds spent in the training loop."),
    ("wall_seconds", _F, True, "Seconds from trial start to row written."),
    ("started_at", _TS, False, "Trial start time (UTC)."),
    # provenance
    ("dpsweep_version", _S, False, "dpsweep version that wrote the row."),
    ("git_commit", _S, True, "Git commit of the code, when known."),
    ("error", _S, True, "Short error message (type and reason) of a failed trial; never data text."),
    ("model_uri", _S, True, "Where the trial's trained model was saved (a folder or s3:// / gs:// URI): "
     "load it with `dpsweep predict --model`, copy it with `dpsweep best --export-model`."),
    ("config_json", _S, False, "Full resolved trial config as a JSON object; "
     "`dpsweep best --export FILE.yaml` turns it back into a `dpsweep train --config` file."),
]

def _setting_columns() -> list[tuple[str, pa.DataType, bool, str]]:
    """The trial settings that are columns (dpsweep.settings declares which), after the ledger."""
    from dpsweep.settings import store_columns

    kinds = {"float": _F, "int": _I, "string": _S, "bool": pa.bool_()}
    return [(name, kinds[kind], True, f"Trial setting: {text[0].upper()}{text[1:]}.")
            for name, kind, text in store_columns()]


_at = [name for name, *_ in _COLUMNS].index("epochs")
_COLUMNS[_at:_at] = _setting_columns()

SCHEMA: pa.Schema = pa.schema(
    [pa.field(name, typ, nullable=nullable) for name, typ, nullable, _ in _COLUMNS],
    metadata={METADATA_KEY: str(SCHEMA_VERSION).encode()},
)
"""Schema of a table read from the store (file columns plus the ``dataset`` partition)."""

FILE_SCHEMA: pa.Schema = SCHEMA.remove(SCHEMA.get_field_index(PARTITION_COLUMN))
"""Schema of each Parquet file: :data:`SCHEMA` without the ``dataset`` partition column."""

COLUMN_DOCS: dict[str, str] = {name: doc for name, _, _, doc in _COLUMNS}
"""Column name -> one-line description."""

COLUMN_NAMES: tuple[str, ...] = tuple(COLUMN_DOCS)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(n for n, _, nullable, _ in _COLUMNS if not nullable)

METRIC_COLUMNS: tuple[str, ...] = (
    "weighted_f1", "macro_f1", "micro_f1", "auroc_macro", "weighted_f1_tuned",
    "macro_f1_tuned", "test_weighted_f1", "test_macro_f1",
)
"""Float columns in [0, 1] that the Pareto front and queries may rank by."""

PRIVACY_LEDGER: tuple[str, ...] = ("delta", "sigma", "clip", "sample_rate", "steps", "accountant")
"""Columns a completed private (finite ε) row must carry so its ε can be recomputed."""


def schema_markdown() -> str:
    """Render the column documentation as the Markdown kept in ``results/SCHEMA.md``.

    Generated, so the file cannot drift from the code (a test compares them);
    regenerate with :func:`write_schema_markdown`.
    """
    lines = [
        f"# Results store schema, version {SCHEMA_VERSION}",
        "",
        "Generated by `dpsweep.results.schema.write_schema_markdown()`; do not edit by hand.",
        "One row per trial. Layout: `STORE/dataset=<name>/<sweep_id>__<trial_id>.parquet`.",
        "`dataset` is the hive partition key and lives only in the directory name.",
        "No report text is ever stored.",
        "",
        "| column | type | nullable | description |",
        "|---|---|---|---|",
    ]
    for name, typ, nullable, doc in _COLUMNS:
        lines.append(f"| `{name}` | `{typ}` | {'yes' if nullable else 'no'} | {doc} |")
    return "\n".join(lines) + "\n"


def write_schema_markdown(path: str | Path = _SCHEMA_MD) -> Path:
    """Write :func:`schema_markdown` to ``path`` (default: ``SCHEMA.md`` next to this file)."""
    out = Path(path)
    out.write_text(schema_markdown(), encoding="utf-8")
    return out
