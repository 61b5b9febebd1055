"""`dpsweep predict`: label reports with a saved model. Torch is imported only when it runs."""

from __future__ import annotations

import json

from dpsweep.console import json_safe

_EXAMPLE = ("example: dpsweep predict --model models/mimic-eps8 --input reports.csv --out predictions.csv\n"
            "         dpsweep predict --model models/mimic-eps8 --dataset-format mimic-cxr "
            "--data-path data/synth-mimic --split test --out test.parquet --json")


def add_predict_command(subparsers) -> None:
    """Register `dpsweep predict` on the CLI's subparsers."""
    import argparse

    p = subparsers.add_parser(
        "predict", help="label reports with a saved model", epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a saved model's probabilities (prob_<label>) and 0/1 labels for every report of a "
                    "CSV or a data set split, one row per report (`row` = its position; no text). When the "
                    "input has labels, print the metrics `dpsweep train` reports.")
    p.add_argument("--model", required=True, metavar="DIR", help="model folder written by dpsweep train --output-dir")
    p.add_argument("--input", metavar="FILE.csv", help="CSV of reports (.csv or .csv.gz); label columns named as "
                                                        "the model's labels, if all present, give metrics")
    p.add_argument("--text-column", default="text", help="column of --input holding the report text (default text)")
    p.add_argument("--dataset-format", help="instead of --input: a data set format (mimic-cxr, ct-rate, csv)")
    p.add_argument("--data-path", help="with --dataset-format: the data set folder")
    p.add_argument("--split", default="test", help="with --dataset-format: train, val or test (default test)")
    p.add_argument("--out", required=True, metavar="FILE", help="output file, .csv or .parquet")
    p.add_argument("--threshold", default="tuned",
                   help="'tuned' (per-label thresholds tuned on validation, default) or a number such as 0.5")
    p.add_argument("--batch-size", type=int, default=64, help="reports per forward pass (default 64)")
    p.add_argument("--device", default="auto", help="auto (the visible GPU, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--base-model", help="base model folder, if it moved since training (weights must match)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args) -> int:
    from dpsweep.devices import resolve_device
    from dpsweep.export.predict import predict_to_file

    summary = predict_to_file(model_dir=args.model, out=args.out, input_csv=args.input,
                              text_column=args.text_column, dataset_format=args.dataset_format,
                              data_path=args.data_path, split=args.split, threshold=args.threshold,
                              batch_size=args.batch_size, force=args.force, device=resolve_device(args.device),
                              base_model=args.base_model)
    if args.json:
        print(json.dumps(json_safe(summary), allow_nan=False))
    else:
        print_summary(summary)
    return 0


def print_summary(s: dict) -> None:
    threshold = "per-label tuned" if s["threshold"] == "tuned" else format(s["threshold"], "g")
    print(f"wrote {s['n_reports']} predictions to {s['out']} (threshold {threshold}) in {s['seconds']:.1f} s")
    if "weighted_f1" not in s:
        return
    print(f"weighted F1    {s['weighted_f1']:.4f} (per-label thresholds: {s['weighted_f1_tuned']:.4f})")
    print(f"macro F1       {s['macro_f1']:.4f} (per-label thresholds: {s['macro_f1_tuned']:.4f})")
    auroc = s["auroc_macro"]
    print(f"micro F1       {s['micro_f1']:.4f}   macro AUROC {'n/a' if auroc is None else format(auroc, '.4f')}")
