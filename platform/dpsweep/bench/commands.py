"""`dpsweep bench ...`: benchmark commands (measured side by side, reported as ratios)."""

from __future__ import annotations

import json
from pathlib import Path


def add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: step cost, calibration speed, trial quality",
                       description="Benchmarks measured side by side in one run. Long: minutes each.")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    step = bsub.add_parser("step", help="DP step vs non-private step (time, peak memory)")
    step.add_argument("--batch-size", type=int, default=32)
    step.add_argument("--length", type=int, default=128)
    step.add_argument("--rounds", type=int, default=3)
    step.add_argument("--ghost", action="store_true", help="also measure ghost clipping")
    step.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    step.add_argument("--model", choices=("minilm", "bert-base"), default="minilm",
                      help="the embedded MiniLM (default) or a BERT-base-sized model built from config "
                           "(random weights, nothing downloaded)")
    step.set_defaults(func=_step)
    gpu = bsub.add_parser("gpu", help="on one GPU: a quickstart trial (train, save, predict), DP step ratios "
                          "(MiniLM, BERT-base), trials per hour with 1, 2, 4 trials sharing the GPU",
                          description="A few minutes on one GPU; refuses where none is visible.")
    gpu.add_argument("--data", default="data/synth-mimic", help="corpus folder (written if absent)")
    gpu.add_argument("--device", default="cuda", help="cuda (default) or cuda:N")
    gpu.add_argument("--step-rounds", type=_positive_int, default=2,
                     help="child processes per model and mode in the step bench (default 2)")
    gpu.add_argument("--levels", type=_positive_int, nargs="+", default=[1, 2, 4],
                     help="trials sharing the GPU at once, one sweep per level (default 1 2 4)")
    gpu.add_argument("--trials", type=_positive_int, default=8, help="trials per level (default 8)")
    gpu.add_argument("--out", help="write the JSON report here")
    gpu.set_defaults(func=_gpu)
    cal = bsub.add_parser("calibration", help="time of one privacy calibration call")
    cal.add_argument("--calls", type=int, default=15)
    cal.set_defaults(func=_calibration)
    synth = bsub.add_parser("synthetic", help="non-private vs ε=8 on a synthetic MIMIC-CXR corpus")
    synth.add_argument("--data", default="data/synth-mimic-12000", help="corpus folder (written if absent)")
    synth.add_argument("--n", type=int, default=12000, help="studies to write when --data is absent")
    synth.add_argument("--out", help="write the JSON report here")
    synth.add_argument("--store", help="also store the split's references (TF-IDF peer, floors) in this results store")
    synth.set_defaults(func=_synthetic)
    real = bsub.add_parser("real", help="non-private vs ε=8 vs TF-IDF on ../shared/datasets/ct-clip-text")
    real.add_argument("--data", default=None, help="labelled-CSV folder (default: ../shared/datasets/ct-clip-text)")
    real.add_argument("--max-length", type=int, default=None)
    real.add_argument("--max-epochs", type=float, default=None)
    real.add_argument("--out", help="write the JSON report here")
    real.add_argument("--store", help="also store the split's references (TF-IDF peer, floors) in this results store")
    real.set_defaults(func=_real)
    sweep = bsub.add_parser("sweep", help="share of sweep trial time outside training steps (Ray, Tune, loading)")
    sweep.add_argument("--space", default="search_spaces/quickstart.yaml")
    sweep.add_argument("--workers", type=int, default=1, help="Ray Train workers per trial")
    sweep.add_argument("--trials-per-target", type=int, default=None)
    sweep.add_argument("--epsilons", type=float, nargs="+", default=None, help="ε targets to run (default: the file's)")
    sweep.add_argument("--out", help="write the JSON report here")
    sweep.set_defaults(func=_sweep)
    load = bsub.add_parser("store-load", help="concurrent writers into one store while `pareto` queries it",
                           description="WRITERS processes append ROWS rows each into a new store while another "
                                       "process runs `dpsweep pareto` in a loop; prints rows lost, duplicated, "
                                       "query failures and rows/s. Exit 0 only when nothing was lost.")
    load.add_argument("--store", required=True, help="a new (empty) folder for the store")
    load.add_argument("--writers", type=int, default=16)
    load.add_argument("--rows", type=int, default=100, help="rows per writer")
    load.set_defaults(func=_store_load)
    scale = bsub.add_parser("scale", help="read, tokenize, cache and step figures at growing corpus sizes",
                            description="For each size: read and tokenize a synthetic MIMIC-CXR once (written "
                                        "under --cache-dir if absent), the frozen-layer cache's size and cost, and "
                                        "one short trial on the tokens, each size in a fresh process.")
    scale.add_argument("--studies", type=_positive_int, nargs="+", default=None,
                       help="corpus sizes in studies (default: 10000 50000 227827)")
    scale.add_argument("--max-steps", type=_positive_int, default=5, help="training steps of the trial (default 5)")
    scale.add_argument("--cache-dir", default="data/bench-scale", help="where the synthetic corpora are kept")
    scale.add_argument("--cache-sample", type=_positive_int, default=1024,
                       help="reports the frozen-layer cache is timed on (default 1024)")
    scale.add_argument("--eval-reports", type=_positive_int, default=2000,
                       help="validation (and test) reports the trial evaluates (default 2000)")
    scale.add_argument("--model", default="default", help="model folder (default: the embedded MiniLM)")
    scale.add_argument("--json", action="store_true", help="print one JSON object per size")
    scale.set_defaults(func=_scale)


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _scale(args) -> int:
    from dpsweep.bench.scale import DEFAULT_SIZES, bench_scale, print_json, table_line

    bench_scale(sizes=tuple(args.studies or DEFAULT_SIZES), max_steps=args.max_steps, cache_dir=Path(args.cache_dir),
                cache_sample=args.cache_sample, eval_reports=args.eval_reports, model=args.model,
                emit=print_json if args.json else (lambda report: print(table_line(report), flush=True)))
    return 0


def _print(obj: dict) -> None:
    print(json.dumps(obj, indent=1))


def _step(args) -> int:
    from dpsweep.bench.step import bench_step

    modes = ("non_private", "dp_hooks", "dp_hooks_flat") + (("dp_ghost",) if args.ghost else ())
    from dpsweep.devices import resolve_device

    _print(bench_step(batch_size=args.batch_size, length=args.length, rounds=args.rounds, modes=modes,
                      device=resolve_device(args.device), model=args.model))
    return 0


def _gpu(args) -> int:
    from dpsweep.bench.gpu import gpu_check, summary_lines
    from dpsweep.console import json_safe

    report = gpu_check(data=Path(args.data), device=args.device, step_rounds=args.step_rounds,
                       levels=tuple(args.levels), trials_per_level=args.trials)
    if not args.out:
        _print(json_safe(report))
    print("\n".join(summary_lines(report)))
    if args.out:
        Path(args.out).write_text(json.dumps(json_safe(report), indent=1))
    return 0


def _calibration(args) -> int:
    from dpsweep.privacy.bench import bench_calibration

    _print(bench_calibration(n_calls=args.calls))
    return 0


def _synthetic(args) -> int:
    from dpsweep.bench.trials import bench_synthetic, dump

    dump(bench_synthetic(Path(args.data), n=args.n, store=_store(args)), Path(args.out) if args.out else None)
    return 0


def _store(args):
    """The results store of --store, checked writable before any data is read; None without it."""
    if not args.store:
        return None
    from dpsweep.results import ResultStore

    store = ResultStore(args.store)
    store.check_writable()
    return store


def _real(args) -> int:
    from dpsweep.bench.trials import SHARED_CT, bench_real, dump

    overrides = {k: v for k, v in (("max_length", args.max_length), ("max_epochs", args.max_epochs)) if v}
    dump(bench_real(Path(args.data) if args.data else SHARED_CT, store=_store(args), **overrides),
         Path(args.out) if args.out else None)
    return 0


def _sweep(args) -> int:
    from dpsweep.bench.sweep import bench_sweep
    from dpsweep.console import json_safe

    report = bench_sweep(args.space, workers=args.workers, trials_per_target=args.trials_per_target,
                         epsilons=tuple(args.epsilons) if args.epsilons else None)
    _print(json_safe({k: v for k, v in report.items() if k != "per_trial"}))
    if args.out:
        Path(args.out).write_text(json.dumps(json_safe(report), indent=1))
    return 0


def _store_load(args) -> int:
    from dpsweep.bench.store_load import report_json, run_store_load
    from dpsweep.errors import UserInputError

    if args.writers < 1 or args.rows < 1:
        raise UserInputError(f"--writers and --rows must be >= 1, got {args.writers} and {args.rows}")
    if Path(args.store).exists() and any(Path(args.store).iterdir()):
        raise UserInputError(f"--store {args.store} is not empty; pass a new folder (the load counts every row)")
    report = run_store_load(args.store, writers=args.writers, rows=args.rows)
    print(report_json(report))
    print(report.line())
    ok = not (report.rows_lost or report.rows_duplicated or report.write_errors or report.query_failures)
    return 0 if ok else 1

