"""``dpsweep pareto | best | report | store``: a thin argparse layer over the results library.

Wire into the main CLI with ``add_results_commands(subparsers)``; each subcommand sets
``func(args) -> int``. Exit codes (dpsweep's one scheme, see dpsweep.cli): 0 ok; 2 bad
input (bad metric, ε, store URI or output path; a recovered row the store refuses);
5 nothing matched the query (empty or missing store, unknown dataset, no completed
trial, nothing under the budget). Messages go to stderr as one line.

JSON output (``--format json``) is strict JSON (``allow_nan=False``): ε = ∞ of
non-private trials is written as the string ``"inf"`` (Python's ``float("inf")`` reads
it back); missing values are ``null``. ``pareto --format json`` writes one object:
``{"dataset", "metric", "front": [row, ...], "references": [...]}``; the references are
the non-private TF-IDF peer and the two floors of the front's split (see
:mod:`dpsweep.results.references`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from dpsweep.errors import UserInputError
from dpsweep.results.coverage import (
    SELECTION_METRICS,
    composed_epsilon_of,
    coverage_lines,
    selection_metric,
    shown_rows,
)
from dpsweep.results.pareto import pareto_front
from dpsweep.results.queries import best_under_budget, export_config
from dpsweep.results.recovery import DEFAULT_MIN_AGE_S, import_row_files, repair_store
from dpsweep.results.references import read_references, reference_lines, references_json
from dpsweep.results.report import write_report
from dpsweep.results.store import DEFAULT_STORE, ResultStore

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOTHING_FOUND = 0, 2, 5
FRONT_OUTPUT_COLUMNS = (
    "epsilon", "epsilon_target", "weighted_f1", "macro_f1", "sigma", "clip", "sample_rate",
    "steps", "delta", "accountant", "privacy_unit", "epsilon_patient", "epsilon_release", "method", "rank", "lora_alpha", "lr", "batch_size", "epochs",
    "max_length", "model", "trial_id", "sweep_id",
)


def _positive_epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 or 'inf', but got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser, *, dataset: bool) -> None:
    parser.add_argument("--store", default=DEFAULT_STORE,
                        help=f"results store: a local folder or s3:// / gs:// URI (default: {DEFAULT_STORE})")
    if dataset:
        parser.add_argument("--dataset", required=True, help="dataset name, e.g. mimic-cxr")
    parser.add_argument("--metric", default="weighted_f1", type=_metric, metavar="{" + ",".join(SELECTION_METRICS) + "}",
                        help="validation metric to maximise (default: weighted_f1); test metrics never select")
    parser.add_argument("--include-reproducible", action="store_true",
                        help="also show DP trials whose noise is replayable from their seed (not private)")


def _metric(text: str) -> str:
    try:
        return selection_metric(text)
    except UserInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_results_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pareto``, ``best`` and ``report`` subcommands to a ``dpsweep`` CLI."""
    pareto = subparsers.add_parser(
        "pareto", help="show the Pareto front of a metric against ε for one dataset",
        description="Print the completed trials no other trial beats on both ε (lower) and the "
                    "metric (higher), sorted by ε. Exit 0 ok, 2 bad input, 5 nothing found.")
    _common(pareto, dataset=True)
    pareto.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table (default), json (an array of row objects; ε = ∞ as \"inf\") or csv")
    pareto.add_argument("--composed", action="store_true",
                        help="also compute the tight composed ε of every DP trial of the dataset (PLD; seconds)")
    pareto.set_defaults(func=run_pareto)

    best = subparsers.add_parser(
        "best", help="show the best trial with ε <= a budget, optionally export its config",
        description="Print the best completed trial of a dataset with ε <= --max-epsilon "
                    "(inf includes non-private). Exit 0 ok, 2 bad input, 5 nothing found.")
    _common(best, dataset=True)
    best.add_argument("--max-epsilon", required=True, type=_positive_epsilon,
                      help="privacy budget; 'inf' allows non-private trials")
    best.add_argument("--format", choices=("table", "json"), default="table",
                      help="table (default: one 'column value' line each) or json (one object)")
    best.add_argument("--composed", action="store_true",
                      help="also compute the tight composed ε of every DP trial of the dataset (PLD; seconds)")
    best.add_argument("--export-model", metavar="DIR",
                      help="copy the trial's saved model (no retraining, no second spend of ε) to DIR")
    best.add_argument("--force", action="store_true", help="replace an existing --export file or model folder")
    best.add_argument("--export", metavar="FILE.yaml",
                      help="write the trial's config as YAML, ready for `dpsweep train --config`")
    best.set_defaults(func=run_best)

    report = subparsers.add_parser(
        "report", help="write Pareto plots and an index.html for every dataset",
        description="Write pareto_<dataset>.png per dataset and index.html (one self-contained file: "
                    "the plots are embedded) into --out; each plot draws the non-private TF-IDF peer and "
                    "the floors stored for the split (see `dpsweep store references`). "
                    "Exit 0 ok, 2 bad input, 5 empty store.")
    _common(report, dataset=False)
    report.add_argument("--out", default="results/report", help="output folder (default: results/report)")
    report.set_defaults(func=run_report)
    _add_store_commands(subparsers)


def _add_store_commands(subparsers: argparse._SubParsersAction) -> None:
    store = subparsers.add_parser("store", help="maintain a results store: references, import recovered rows, repair",
                                  description="Maintain a results store. Exit 0 ok, 2 bad input.")
    sub = store.add_subparsers(dest="store_command", required=True)
    rows = sub.add_parser(
        "import-rows", help="publish rows saved in recovered-rows/ when the store could not take them",
        description="Append rows saved as JSON (recovered-rows/*.json, named in the error line of the "
                    "run that could not store them). A row already stored is left as it is. "
                    "Exit 0 every file imported or already stored, 2 a file refused.")
    rows.add_argument("files", nargs="+", metavar="FILE", help="recovered row files (.json)")
    rows.add_argument("--store", default=DEFAULT_STORE, help=f"results store (default: {DEFAULT_STORE})")
    rows.set_defaults(func=run_import_rows)
    repair = sub.add_parser(
        "repair", help="publish finished writes a killed process left as temp files; remove broken ones",
        description="A writer killed between writing a row and publishing it leaves "
                    ".<name>.parquet.<uuid>.tmp. Complete ones (footer reads, rows valid) are published "
                    "under their final name unless it exists; broken ones are removed. Exit 0 ok, 2 bad input.")
    repair.add_argument("--store", default=DEFAULT_STORE, help=f"results store (default: {DEFAULT_STORE})")
    repair.add_argument("--min-age-s", type=float, default=DEFAULT_MIN_AGE_S, metavar="SECONDS",
                        help="leave temp files younger than this: a live writer may be about to publish them "
                             f"(default {DEFAULT_MIN_AGE_S:g})")
    repair.set_defaults(func=run_repair)
    _add_references_command(sub)


SPLIT_SETTINGS = ("dataset_format", "data_path", "sections", "uncertain_policy", "val_fraction",
                  "text_column", "label_columns", "seed")
"""Settings that decide a split's reports, text and labels: `store references --compute` takes them."""


def _add_references_command(sub: argparse._SubParsersAction) -> None:
    from dpsweep.settings import add_setting_flags

    refs = sub.add_parser(
        "references", help="list (or --compute) the non-private TF-IDF peer and the floors per dataset and split",
        description="List the references stored beside the trial rows: TF-IDF + logistic regression "
                    "(non-private: fitted on the training split), and the floors every label positive and "
                    "label frequencies, on the validation split. A sweep computes them; --compute reads the "
                    "data set and computes them without one (pass the split settings its trials used). "
                    "Exit 0 ok, 2 bad input, 5 none stored.")
    refs.add_argument("--store", default=DEFAULT_STORE, help=f"results store (default: {DEFAULT_STORE})")
    refs.add_argument("--dataset", help="only this dataset")
    refs.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    refs.add_argument("--compute", action="store_true",
                      help="read the data set (--data-path, --dataset-format and the split settings) and "
                           "compute its references first")
    refs.add_argument("--dataset-name", metavar="NAME",
                      help="with --compute: the dataset name its trials were stored under (default: the "
                           "reader's: the format, or a csv folder's name)")
    refs.add_argument("--force", action="store_true", help="with --compute: recompute references already stored")
    add_setting_flags(refs, only=SPLIT_SETTINGS)
    refs.set_defaults(func=run_references)


def _emit(text: str) -> None:
    """Print to stdout; a reader that closed the pipe early (``| head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit


def _fail(code: int, message: str) -> int:
    print(f"dpsweep: {message}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace, *, dataset: str | None) -> pa.Table | int:
    """Read the store (one dataset's partition when given), or return an exit code."""
    try:
        store = ResultStore(args.store)
        names = store.datasets()
    except UserInputError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    if not names:
        return _fail(EXIT_NOTHING_FOUND, f"no results in store {args.store!r} (empty or missing); "
                     "run a sweep first or pass --store")
    if dataset is not None and dataset not in names:
        return _fail(EXIT_NOTHING_FOUND, f"no dataset {dataset!r} in store {args.store!r}; "
                     f"it holds: {', '.join(names)}")
    return store.read(dataset)


def _shown(table: pa.Table, args: argparse.Namespace) -> pa.Table:
    return shown_rows(table, include_reproducible=args.include_reproducible)


def _say_coverage(table: pa.Table, args: argparse.Namespace, *, to_stdout: bool) -> None:
    """What the ε shown covers: below a table on stdout, else on stderr (keeps JSON/CSV clean)."""
    composed = composed_epsilon_of(table, args.dataset) if getattr(args, "composed", False) else None
    lines = coverage_lines(table, args.dataset, composed=composed)
    if to_stdout:
        _emit("\n" + "\n".join(f"note: {line}" for line in lines))
    else:
        print("\n".join(f"dpsweep: note: {line}" for line in lines), file=sys.stderr)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if value == math.inf else f"{value:.6g}"
    return str(value)


def format_rows(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str) -> str:
    """Render rows as an aligned text table, strict JSON or CSV (see module doc)."""
    if fmt == "json":
        data = [{c: _jsonable(r.get(c)) for c in columns} for r in rows]
        return json.dumps(data, indent=2, allow_nan=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if r.get(c) is None else _text(r.get(c)) for c in columns] for r in rows])
        return buffer.getvalue().rstrip("\n")
    cells = [list(columns)] + [[_text(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells)


def run_pareto(args: argparse.Namespace) -> int:
    """Handler of ``dpsweep pareto``."""
    table = _load(args, dataset=args.dataset)
    if isinstance(table, int):
        return table
    table = _shown(table, args)
    front = pareto_front(table, dataset=args.dataset, metric=args.metric)
    if front.num_rows == 0:
        return _fail(EXIT_NOTHING_FOUND, f"dataset {args.dataset!r} has no completed trial with "
                     f"{args.metric}; check `dpsweep report` for failed or pruned trials")
    columns = list(dict.fromkeys(("epsilon", args.metric, *FRONT_OUTPUT_COLUMNS)))
    references = read_references(ResultStore(args.store), args.dataset)
    if args.format == "json":
        front_json = json.loads(format_rows(front.to_pylist(), columns, "json"))
        _emit(json.dumps({"dataset": args.dataset, "metric": args.metric, "front": front_json,
                          "references": references_json(references, front, dataset=args.dataset,
                                                        metric=args.metric)}, indent=2, allow_nan=False))
    else:
        _emit(format_rows(front.to_pylist(), columns, args.format))
    _say_references(references, front, args, to_stdout=args.format == "table")
    _say_coverage(table, args, to_stdout=args.format == "table")
    return EXIT_OK


def _say_references(references: pa.Table, rows: pa.Table, args: argparse.Namespace, *, to_stdout: bool) -> None:
    """The non-private peer and the floors of these rows' split: under a table, else on stderr."""
    lines = reference_lines(references, rows, dataset=args.dataset, metric=args.metric, store_uri=args.store)
    if to_stdout:
        _emit("\n" + "\n".join(lines))
    else:
        print("\n".join(f"dpsweep: {line}" for line in lines), file=sys.stderr)


def run_best(args: argparse.Namespace) -> int:
    """Handler of ``dpsweep best``."""
    table = _load(args, dataset=args.dataset)
    if isinstance(table, int):
        return table
    table = _shown(table, args)
    row = best_under_budget(table, dataset=args.dataset, max_epsilon=args.max_epsilon, metric=args.metric)
    if row is None:
        return _fail(EXIT_NOTHING_FOUND, f"no completed trial of {args.dataset!r} with "
                     f"ε <= {_text(args.max_epsilon)}; raise --max-epsilon or run more trials")
    references = read_references(ResultStore(args.store), args.dataset)
    chosen = pa.Table.from_pylist([row], schema=table.schema)
    if args.format == "json":
        _emit(json.dumps({**{k: _jsonable(v) for k, v in row.items()},
                          "references": references_json(references, chosen, dataset=args.dataset,
                                                        metric=args.metric)}, indent=2, allow_nan=False))
    else:
        width = max(len(k) for k in row)
        _emit("\n".join(f"{k.ljust(width)}  {_text(v)}" for k, v in row.items() if k != "config_json"))
    _say_references(references, chosen, args, to_stdout=args.format == "table")
    _say_coverage(table, args, to_stdout=args.format == "table")
    if args.export_model:
        code = _export_model(row, args.export_model, force=args.force)
        if code != EXIT_OK:
            return code
    if args.export:
        if os.path.exists(args.export) and not args.force:
            return _fail(EXIT_BAD_INPUT, f"{args.export} exists; pass a new file name, or --force to replace it")
        try:
            path = export_config(row, args.export)
        except (OSError, UserInputError) as exc:
            return _fail(EXIT_BAD_INPUT, f"cannot export config to {args.export!r}: {exc}")
        print(f"config written to {path}", file=sys.stderr)
    return EXIT_OK


def _export_model(row: dict[str, Any], target: str, *, force: bool) -> int:
    """Copy the chosen trial's saved model; a trial trained before models were kept has none."""
    from dpsweep.export.metadata import copy_model

    uri = row.get("model_uri")
    if not uri:
        return _fail(EXIT_NOTHING_FOUND, f"trial {row['trial_id']} kept no model (trained without --output-dir, "
                     "or before sweeps kept models); `dpsweep best --export` gives its config to retrain")
    try:
        path = copy_model(uri, target, force=force)
    except (OSError, UserInputError) as exc:
        return _fail(EXIT_BAD_INPUT, f"cannot export the model to {target!r}: {exc}")
    print(f"model of trial {row['trial_id']} copied to {path} (from {uri})", file=sys.stderr)
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``dpsweep report``."""
    table = _load(args, dataset=None)
    if isinstance(table, int):
        return table
    try:
        paths = write_report(_shown(table, args), args.out, metric=args.metric,
                             references=read_references(ResultStore(args.store)))
    except ImportError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    except OSError as exc:
        return _fail(EXIT_BAD_INPUT, f"cannot write report to {args.out!r}: {exc}")
    print(f"report written: {paths[-1]} ({len(paths) - 1} plots)", file=sys.stderr)
    return EXIT_OK


def run_import_rows(args: argparse.Namespace) -> int:
    """Handler of ``dpsweep store import-rows``."""
    try:
        store = ResultStore(args.store)
    except UserInputError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    results = import_row_files(store, args.files)
    for r in results:
        print(f"{r.status}: {r.file}" + (f" -> {r.detail}" if r.status == "imported" else f" ({r.detail})"),
              file=sys.stderr)
    refused = sum(r.status == "refused" for r in results)
    print(f"store import-rows: {sum(r.status == 'imported' for r in results)} imported, "
          f"{sum(r.status == 'already stored' for r in results)} already stored, {refused} refused",
          file=sys.stderr)
    return EXIT_BAD_INPUT if refused else EXIT_OK


def run_repair(args: argparse.Namespace) -> int:
    """Handler of ``dpsweep store repair``."""
    if not math.isfinite(args.min_age_s) or args.min_age_s < 0:
        return _fail(EXIT_BAD_INPUT, f"--min-age-s must be a number of seconds >= 0, got {args.min_age_s!r}")
    try:
        actions = repair_store(ResultStore(args.store), min_age_s=args.min_age_s)
    except UserInputError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    for a in actions:
        print(f"{a.action}: {a.path} ({a.detail})", file=sys.stderr)
    counts = {kind: sum(a.action == kind for a in actions) for kind in ("published", "removed", "kept")}
    print(f"store repair of {args.store}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
          + ("" if actions else " (no temp files)"), file=sys.stderr)
    return EXIT_OK


REFERENCE_TABLE_COLUMNS = ("dataset", "reference", "weighted_f1", "weighted_f1_tuned", "macro_f1", "micro_f1",
                           "auroc_macro", "n_train", "n_val", "val_fraction", "seed", "sections",
                           "uncertain_policy")


def _reference_table(references: pa.Table) -> list[dict[str, Any]]:
    """One row per (dataset, split, reference), one column per metric."""
    from dpsweep.results.references import REFERENCE_KINDS, SPLIT_COLUMNS

    out: dict[tuple, dict[str, Any]] = {}
    for r in references.to_pylist():
        key = (r["dataset"], *(r[c] for c in SPLIT_COLUMNS), r["reference"])
        row = out.setdefault(key, {"dataset": r["dataset"], "reference": REFERENCE_KINDS.get(r["reference"],
                                                                                             r["reference"]),
                                   **{c: r[c] for c in SPLIT_COLUMNS}})
        row[r["metric"]] = r["value"]
    order = list(REFERENCE_KINDS.values())
    return sorted(out.values(), key=lambda row: (row["dataset"], repr([row[c] for c in SPLIT_COLUMNS]),
                                                  order.index(row["reference"]) if row["reference"] in order
                                                  else len(order)))


def run_references(args: argparse.Namespace) -> int:
    """Handler of ``dpsweep store references``."""
    from dpsweep.results.references import NON_PRIVATE_NOTE, compute_hint

    try:
        store = ResultStore(args.store)
        if args.compute:
            _compute_references(args, store)
    except UserInputError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    references = read_references(store, args.dataset)
    if references.num_rows == 0:
        what = f"for dataset {args.dataset!r} " if args.dataset else ""
        return _fail(EXIT_NOTHING_FOUND, f"no references stored {what}in store {args.store!r} (run a sweep, or "
                     f"`{compute_hint(args.store, args.dataset or 'NAME')}` to compute them)")
    rows = _reference_table(references)
    _emit(format_rows(rows, REFERENCE_TABLE_COLUMNS, args.format))
    if args.format == "table":
        _emit(f"\nnote: {NON_PRIVATE_NOTE}; metrics are on the validation split.")
    return EXIT_OK


def _compute_references(args: argparse.Namespace, store: ResultStore) -> None:
    """Read the data set with the split settings given and store its references (UserInputError on bad input)."""
    from dpsweep.preflight import check_dataset_for_store, expected_dataset_name
    from dpsweep.settings import TrialConfig

    config = TrialConfig().override(source="command line", **{k: getattr(args, k, None) for k in SPLIT_SETTINGS})
    if not config.data_path:
        raise UserInputError("--compute needs the data set: pass --data-path DIR and --dataset-format FORMAT, "
                             "and the split settings its trials used (--val-fraction, --seed, --sections)")
    if args.dataset_name is not None:
        name, source, fix = args.dataset_name, "--dataset-name", "pass another --dataset-name"
    else:
        (name, source), fix = expected_dataset_name(config.dataset_format, config.data_path), "pass --dataset-name"
    check_dataset_for_store(name, source=source, fix=fix)
    store.check_writable()
    from dpsweep.bench.references import record_references
    from dpsweep.train.loop import load_trial_corpus

    corpus = load_trial_corpus(config)
    stored = record_references(store, corpus, config, dataset=name, force=args.force,
                               log=lambda line: print(f"dpsweep: {line}", file=sys.stderr))
    if stored is None:
        print(f"dpsweep: references of {name} on this split are stored already; --force recomputes them",
              file=sys.stderr)
