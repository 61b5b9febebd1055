"""The `dpsweep` command: a thin layer over the library.

Exit codes, the same for every command:

- 0 ok;
- 1 internal error: a bug in dpsweep (one line saying so and where to report it; the
  traceback too with DPSWEEP_DEBUG=1);
- 2 bad input, or a store that cannot take the results (one line naming the problem and
  the fix);
- 3 infeasible: the trial cannot meet its privacy budget (nothing was trained);
- 4 every trial of a sweep failed;
- 5 nothing matched the query (`pareto`, `best`, `report`);
- 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from dpsweep import __version__
from dpsweep.console import json_safe, quiet_libraries
from dpsweep.errors import UserInputError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INFEASIBLE = 0, 1, 2, 3
EXIT_ALL_FAILED, EXIT_NOTHING_FOUND, EXIT_INTERRUPTED = 4, 5, 130


# ---- train ------------------------------------------------------------------------------

def _add_train(sub) -> None:
    p = sub.add_parser("train", help="run one DP-LoRA trial",
                       description="Fine-tune one classifier with DP-LoRA and report its metrics. "
                                   "Flags override --config.")
    p.add_argument("--config", help="YAML file of trial settings (keys as the flags, with underscores)")
    from dpsweep.settings import add_setting_flags

    add_setting_flags(p)
    p.add_argument("--output-dir", metavar="DIR", help="save the trained model there (peft adapters, head, "
                   "tokenizer, thresholds, model card); read it with `dpsweep predict --model DIR`")
    p.add_argument("--force", action="store_true", help="with --output-dir: replace a model saved there before")
    p.add_argument("--device", default="auto", help="auto (the visible GPU, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--store", help="results store to append this trial to (directory or URI)")
    p.add_argument("--sweep-id", default="manual", help="sweep id recorded with the trial in the store")
    p.add_argument("--dataset-name", metavar="NAME",
                   help="name the data set in the results and the store (default: the reader's: the format, "
                        "or a csv folder's name); must start with a letter")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from dpsweep.settings import SETTINGS, TrialConfig

    config = TrialConfig.from_yaml(args.config) if args.config else TrialConfig()
    config = config.override(source="command line", **{key: getattr(args, key, None) for key in SETTINGS})
    if not config.data_path:
        raise UserInputError("no data set given; pass --data-path DIR (and --dataset-format) or a --config file")
    if args.store:
        _check_train_store(args, config)
    elif args.dataset_name is not None:
        from dpsweep.preflight import check_dataset_for_store

        check_dataset_for_store(args.dataset_name, source="--dataset-name", fix="pass another --dataset-name")
    if args.output_dir and "://" not in args.output_dir:
        from pathlib import Path

        from dpsweep.export.files import check_folder_target
        from dpsweep.export.metadata import METADATA_FILE

        check_folder_target(Path(args.output_dir), force=args.force,
                            is_replaceable=lambda p: (p / METADATA_FILE).is_file())
    from dpsweep.preflight import check_trial_model

    check_trial_model(config)  # the model's config.json only: before any data or weights are read
    from dpsweep.devices import resolve_device
    from dpsweep.train import run_trial

    device = resolve_device(args.device)
    result = run_trial(config, device=device, output_dir=args.output_dir, replace_output=args.force)
    if args.dataset_name:
        result.dataset = args.dataset_name
    recovered = _store_train_result(args, result) if args.store else None
    summary = result.to_dict()
    if args.json:
        print(json.dumps(json_safe(summary), allow_nan=False))
    else:
        _print_summary(summary)
    if recovered is not None:
        print(f"dpsweep: error: {recovered}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK if result.status == "completed" else EXIT_INFEASIBLE


def _check_train_store(args, config) -> None:
    """Before any data or model is read: the store takes a row, the dataset name and sweep id are valid."""
    from dpsweep.preflight import check_dataset_for_store, check_store_target, expected_dataset_name

    if args.dataset_name is not None:
        name, source, fix = args.dataset_name, "--dataset-name", "pass another --dataset-name"
    else:
        name, source = expected_dataset_name(config.dataset_format, config.data_path)
        fix = "pass --dataset-name NAME (e.g. --dataset-name reports)"
    check_dataset_for_store(name, source=source, fix=fix)
    check_store_target(args.store, dataset=name, ids={"--sweep-id": args.sweep_id})


def _store_train_result(args, result) -> str | None:
    """Append the trial's row; when that fails, where the row was saved instead (one line)."""
    from dpsweep.results import ResultStore
    from dpsweep.results.recovery import Recovered, append_or_recover, recovery_folder
    from dpsweep.train.record import result_row

    stored = append_or_recover(ResultStore(args.store), result_row(result, sweep_id=args.sweep_id),
                               folder=recovery_folder())
    if isinstance(stored, Recovered):
        return stored.message(model_uri=result.model_uri)
    print(f"[dpsweep] trial stored in {stored}", file=sys.stderr)
    return None


def _print_summary(s: dict) -> None:
    if s["status"] != "completed":
        print(f"{s['status']}: {s['reason']}")
        return
    eps = "inf (non-private)" if math.isinf(s["epsilon"]) else f"{s['epsilon']:.4g} (target {s['epsilon_target']:g})"
    print(f"dataset        {s['dataset']}  ({s['n_train']} train / {s['n_val']} val)")
    print(f"epsilon        {eps}, delta {s['delta']:g}, accountant {s['accountant']}")
    print(f"sigma / clip   {s['sigma']:.4g} / {s['clip']:g}, q {s['sample_rate']:.4g}, steps {s['steps']}")
    print(f"weighted F1    {s['weighted_f1']:.4f} (per-label thresholds: {s['weighted_f1_tuned']:.4f})")
    print(f"macro F1       {s['macro_f1']:.4f} (per-label thresholds: {s['macro_f1_tuned']:.4f})")
    print(f"micro F1       {s['micro_f1']:.4f}   macro AUROC {s['auroc_macro'] or float('nan'):.4f}")
    if "test_weighted_f1" in s:
        print(f"test           weighted F1 {s['test_weighted_f1']:.4f}, macro F1 {s['test_macro_f1']:.4f}")
    print(f"train time     {s['train_seconds']:.1f} s ({s['step_seconds']:.2f} s a step)")


# ---- data -------------------------------------------------------------------------------

def _add_data(sub) -> None:
    p = sub.add_parser("data", help="synthesize or inspect report corpora")
    dsub = p.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write a synthetic corpus in a real on-disk layout")
    synth.add_argument("--format", required=True, help="mimic-cxr or ct-rate")
    synth.add_argument("--out", required=True, help="folder to write (created)")
    synth.add_argument("--n", type=int, default=4000, help="number of studies/scans (default 4000)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_cmd_synth)
    inspect = dsub.add_parser("inspect", help="counts per label and split (never text)")
    inspect.add_argument("--format", required=True, help="mimic-cxr, ct-rate or csv")
    inspect.add_argument("--path", required=True)
    inspect.add_argument("--uncertain-policy", default="zeros")
    inspect.add_argument("--val-fraction", type=float, default=0.2)
    inspect.add_argument("--seed", type=int, default=0)
    inspect.add_argument("--text-column", default=None, metavar="NAME",
                         help="csv format: the column holding the report text (default: detected)")
    inspect.add_argument("--label-columns", default=None, metavar="NAME[,NAME...]",
                         help="csv format: the 0/1 label columns, comma-separated, in label order "
                              "(default: every column that is not the text or an id; others are ignored)")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_cmd_inspect)


def _cmd_synth(args) -> int:
    from dpsweep.data import write_synthetic

    if args.format not in ("mimic-cxr", "ct-rate"):
        raise UserInputError(f"--format must be mimic-cxr or ct-rate for synth, got {args.format!r}")
    if args.n < 10:
        raise UserInputError(f"--n must be at least 10, got {args.n}")
    out = write_synthetic(args.format, args.out, n=args.n, seed=args.seed)
    print(f"wrote a synthetic {args.format} corpus of {args.n} to {out}")
    return EXIT_OK


def _cmd_inspect(args) -> int:
    from dpsweep.data import DataOptions, load_corpus, summarize
    from dpsweep.settings import coerce_setting

    if args.format != "csv" and (args.text_column is not None or args.label_columns is not None):
        raise UserInputError(f"--text-column and --label-columns name columns of the csv format, but --format "
                             f"is {args.format!r}; drop them or pass --format csv")
    labels = coerce_setting("label_columns", args.label_columns, source="--label-columns")
    options = DataOptions(uncertain_policy=args.uncertain_policy, val_fraction=args.val_fraction, seed=args.seed,
                          text_column=args.text_column, label_columns=labels)
    summary = summarize(load_corpus(args.format, args.path, options))
    if args.json:
        print(json.dumps(json_safe(summary), indent=1))
    else:
        _print_inspect(summary)
    return EXIT_OK


def _print_inspect(summary: dict) -> None:
    for key, value in summary.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            print(f"{key}:")
            for inner, counts in value.items():
                print(f"  {inner:<36} " + "  ".join(f"{k}={v}" for k, v in counts.items()))
        else:
            print(f"{key}: {value}")


# ---- entry point ------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, but a refused command line is one line (the problem and where to look), not a usage page."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dpsweep",
        description="Differentially private LoRA fine-tuning of radiology report classifiers.",
        epilog="Start with `dpsweep data synth --format mimic-cxr --out data/synth-mimic` and "
               "`dpsweep train --dataset-format mimic-cxr --data-path data/synth-mimic --epsilon 8`.")
    parser.add_argument("--version", action="version", version=f"dpsweep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_data(sub)
    from dpsweep.sweep.commands import add_ray_command, add_sweep_command

    add_sweep_command(sub)
    add_ray_command(sub)
    from dpsweep.export.commands import add_predict_command

    add_predict_command(sub)
    from dpsweep.bench.commands import add_bench_command

    add_bench_command(sub)
    try:
        from dpsweep.results.commands import add_results_commands
    except ImportError:  # pragma: no cover - results subpackage always ships
        pass
    else:
        add_results_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every outcome maps to the exit codes of the module docstring."""
    quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserInputError as exc:
        print(f"dpsweep: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("dpsweep: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - anything else is a bug (PrivacyGuardError included)
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """One line for a bug; the traceback only when DPSWEEP_DEBUG=1 (it may name local paths)."""
    message = " ".join(str(exc).split())[:500]
    print(f"dpsweep: internal error (a bug): {type(exc).__name__}: {message}; please report it with the "
          "command you ran" + ("" if _debug() else " (DPSWEEP_DEBUG=1 shows the traceback)"), file=sys.stderr)
    if _debug():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return EXIT_INTERNAL


def _debug() -> bool:
    return os.environ.get("DPSWEEP_DEBUG", "") == "1"


if __name__ == "__main__":
    sys.exit(main())
