"""A saved model's predictions for a CSV of reports or a data set split, written to a file.

One output row per report: `row` (its 0-based position in the input), `prob_<label>`
and `<label>` (0/1) for every label. Report text and data set ids are never written.
When the input carries labels, the metrics of `dpsweep train --json` are returned too.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from dpsweep.data import DataOptions, load_corpus
from dpsweep.data.csvio import read_table
from dpsweep.data.records import UNKNOWN, parse_label
from dpsweep.errors import ModelError, UserInputError
from dpsweep.export.artifact import load_model, predict_probabilities, read_metadata
from dpsweep.export.files import check_file_target, staged_file
from dpsweep.train.metrics import evaluate

OUTPUT_SUFFIXES = (".csv", ".parquet")
PROGRESS_MIN_REPORTS = 1000  # shorter inputs finish before a progress line would help


@dataclass
class Reports:
    """Texts to predict and, when the input has them, their labels in the model's order."""

    texts: list[str]
    labels: np.ndarray | None = None
    mask: np.ndarray | None = None
    source: str = ""


def log_stderr(message: str) -> None:
    print(f"[dpsweep] {message}", file=sys.stderr, flush=True)


def predict_to_file(*, model_dir: str | Path, out: str | Path, input_csv: str | Path | None = None,
                    text_column: str = "text", dataset_format: str | None = None,
                    data_path: str | Path | None = None, split: str = "test", threshold: str = "tuned",
                    batch_size: int = 64, force: bool = False, device: str = "cpu",
                    base_model: str | None = None, log=log_stderr) -> dict[str, Any]:
    """Predict every report of the input and write the predictions to `out` (.csv or .parquet).

    threshold: "tuned" (the per-label thresholds tuned on validation) or a number in
    (0, 1) for every label. Returns a summary; with labels in the input, also the
    metrics `dpsweep train --json` reports (weighted_f1 at 0.5, weighted_f1_tuned, ...).
    Every input check runs before the model is loaded; the output appears whole or not at all.
    """
    started = time.perf_counter()
    _check_source(input_csv=input_csv, dataset_format=dataset_format, data_path=data_path)
    out = Path(out).expanduser()
    check_file_target(out, force=force, suffixes=OUTPUT_SUFFIXES)
    meta = read_metadata(model_dir)
    label_names = tuple(meta["label_names"])
    cut = parse_threshold(threshold)
    if input_csv is not None:
        reports = read_csv_reports(Path(input_csv).expanduser(), text_column=text_column, label_names=label_names)
    else:
        reports = read_dataset_reports(dataset_format, data_path, split=split, label_names=label_names,
                                       data_options=meta.get("data_options") or {}, log=log)
    loaded = load_model(model_dir, device=device, base_model=base_model)
    probs = predict_probabilities(loaded, reports.texts, batch_size=batch_size,
                                  progress=_progress(len(reports.texts), log))
    thresholds = loaded.thresholds if cut == "tuned" else np.full(len(label_names), cut, dtype=np.float32)
    write_predictions(out, probs, probs >= thresholds.astype(probs.dtype), label_names)
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {"out": str(out), "n_reports": len(reports.texts), "source": reports.source,
                               "threshold": cut, "seconds": seconds}
    if reports.labels is not None:
        summary.update(label_metrics(probs, reports.labels, reports.mask, label_names, loaded.thresholds))
    return summary


def _check_source(*, input_csv, dataset_format, data_path) -> None:
    dataset = dataset_format is not None or data_path is not None
    if input_csv is not None and dataset:
        raise UserInputError("pass either --input FILE.csv or --dataset-format F --data-path P, not both")
    if input_csv is None and not dataset:
        raise UserInputError("no reports given; pass --input FILE.csv, or --dataset-format F --data-path P")
    if dataset and (dataset_format is None or data_path is None):
        raise UserInputError("a data set needs both --dataset-format and --data-path; pass the missing one")


def parse_threshold(threshold: str | float) -> str | float:
    """"tuned", or a number strictly between 0 and 1."""
    if threshold == "tuned":
        return "tuned"
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value < 1:
        raise UserInputError(f"threshold must be 'tuned' or a number in (0, 1), got {threshold!r}; "
                             "pass --threshold tuned or --threshold 0.5")
    return value


def read_csv_reports(path: Path, *, text_column: str, label_names: tuple[str, ...]) -> Reports:
    """Texts of `text_column`; labels too when the file has a column for every model label."""
    if not path.is_file():
        raise UserInputError(f"input file {path} does not exist; pass a CSV with a {text_column!r} column")
    table = read_table(path, fmt="csv", kind="input file")
    if text_column not in table.header:
        raise UserInputError(f"input file {path} has no column {text_column!r} (its columns: "
                             f"{', '.join(table.header)}); pass --text-column with the report text column")
    texts = table.column(text_column)
    present = [name for name in label_names if name in table.header]
    if not present:
        return Reports(texts=texts, source=f"input file {path}")
    if len(present) < len(label_names):
        missing = [name for name in label_names if name not in table.header]
        raise UserInputError(f"input file {path} has {len(present)} of the model's {len(label_names)} label "
                             f"columns (missing: {', '.join(missing)}); include all of them for metrics, or none")
    rule = "label columns must hold 0, 1 or blank (unknown)"
    values = np.array([[parse_label(table, i, name, row[table.index(name)], allowed=(0.0, 1.0),
                                    blank=UNKNOWN, rule=rule) for name in label_names]
                       for i, row in enumerate(table.rows)], dtype=np.float32).reshape(len(texts), -1)
    mask = ~np.isnan(values)
    return Reports(texts=texts, labels=np.where(mask, values, 0.0), mask=mask, source=f"input file {path}")


def read_dataset_reports(dataset_format: str, data_path: str | Path, *, split: str, label_names: tuple[str, ...],
                         data_options: dict[str, Any], log=log_stderr) -> Reports:
    """One split of a data set, read with the options the model was trained with."""
    known = {f.name for f in fields(DataOptions)}
    options = DataOptions(**{k: v for k, v in data_options.items() if k in known})
    log(f"reading {dataset_format} split {split!r} with the model's data options "
        f"(sections={options.sections}, uncertain_policy={options.uncertain_policy}, "
        f"val_fraction={options.val_fraction:g}, seed={options.seed})")
    corpus = load_corpus(dataset_format, data_path, options)
    splits = corpus.splits()
    if split not in splits:
        raise UserInputError(f"data set {data_path} has no {split!r} split (it has {', '.join(splits)}); "
                             "pass --split with one of those")
    if set(corpus.label_names) != set(label_names):
        missing = sorted(set(label_names) - set(corpus.label_names))
        extra = sorted(set(corpus.label_names) - set(label_names))
        raise UserInputError(f"data set labels differ from the model's (model labels missing from the data: "
                             f"{', '.join(missing) or 'none'}; data labels unknown to the model: "
                             f"{', '.join(extra) or 'none'}); pass a data set with the model's labels")
    order = [corpus.label_names.index(name) for name in label_names]
    part = splits[split]
    return Reports(texts=list(part.texts), labels=part.labels[:, order], mask=part.mask[:, order],
                   source=f"{dataset_format} data set {data_path}, split {split}")


def label_metrics(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, label_names: tuple[str, ...],
                  thresholds: np.ndarray) -> dict[str, Any]:
    """The metric keys of `dpsweep train --json`: at threshold 0.5, plus the tuned-threshold F1s."""
    plain = evaluate(probs, labels, mask, label_names)
    tuned = evaluate(probs, labels, mask, label_names, thresholds=thresholds)
    return {**plain.to_dict(), "weighted_f1_tuned": tuned.weighted_f1, "macro_f1_tuned": tuned.macro_f1}


def output_columns(label_names: tuple[str, ...]) -> list[str]:
    """Output header: row, prob_<label>..., <label>... (ModelError if two would clash)."""
    header = ["row", *(f"prob_{name}" for name in label_names), *label_names]
    if len(set(header)) != len(header):
        raise ModelError(f"the model's label names {list(label_names)} clash with the output columns "
                         "'row' / 'prob_<label>'; rename the labels")
    return header


def write_predictions(out: Path, probs: np.ndarray, predicted: np.ndarray, label_names: tuple[str, ...]) -> None:
    """Write the predictions as CSV or Parquet, atomically (temporary file, then rename)."""
    header = output_columns(label_names)
    n = probs.shape[0]
    with staged_file(out) as staging:
        if out.suffix.lower() == ".parquet":
            _write_parquet(staging, header, probs, predicted)
            return
        with open(staging, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for i in range(n):  # 9 significant digits: a float32 read back is bit-identical
                writer.writerow([i, *(format(float(p), ".9g") for p in probs[i]),
                                 *(int(v) for v in predicted[i])])


def _write_parquet(path: Path, header: list[str], probs: np.ndarray, predicted: np.ndarray) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UserInputError("writing .parquet needs pyarrow: pip install pyarrow (or write .csv)") from exc
    n_labels = probs.shape[1]
    arrays = [pa.array(np.arange(probs.shape[0], dtype=np.int64))]
    arrays += [pa.array(probs[:, j].astype(np.float32)) for j in range(n_labels)]
    arrays += [pa.array(predicted[:, j].astype(np.int8)) for j in range(n_labels)]
    pq.write_table(pa.Table.from_arrays(arrays, names=header), str(path))


def _progress(total: int, log):
    """A progress callback logging about every 10% (None for short inputs)."""
    if total < PROGRESS_MIN_REPORTS:
        return None
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        log(f"predicted {done}/{total} reports ({100 * done / total:.0f}%), "
            f"{time.perf_counter() - started:.0f} s")
    return report
