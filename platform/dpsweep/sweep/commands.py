"""`dpsweep sweep FILE.yaml`: validate, plan, run on Ray, print the Pareto front.

Exit codes (dpsweep's one scheme, see dpsweep.cli): 0 the sweep ran (or the dry run
planned); 2 bad input (one line, before any data, model or Ray is touched), or rows the
store could not take (saved in recovered-rows/ for `dpsweep store import-rows`); 4 every
trial failed.
"""

from __future__ import annotations

import argparse
import math
import sys

EXIT_OK, EXIT_BAD_INPUT, EXIT_ALL_FAILED = 0, 2, 4


def add_sweep_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="search hyperparameters under fixed ε targets on Ray Tune + Optuna",
        description="Run the search space in FILE.yaml: for each ε target (and inf, the non-private "
                    "baseline) an Optuna search on Ray Tune; every trial becomes one row in the "
                    "results store; ends by printing the Pareto front. Exit 0 ok, 2 bad input, "
                    "4 every trial failed.")
    p.add_argument("file", metavar="FILE.yaml", help="search space, e.g. search_spaces/quickstart.yaml")
    p.add_argument("--address", help="join a Ray cluster: 'auto' (the one `ray start` made) or HOST:PORT; "
                                     "default: start a local Ray and stop it afterwards")
    p.add_argument("--store", help="results store (folder or s3:// / gs:// URI); default: the file's store")
    p.add_argument("--name", help="sweep id (default: the file's name plus a UTC time)")
    p.add_argument("--runs-dir", default="runs/sweeps", help="Ray Tune's trial folders (default runs/sweeps)")
    p.add_argument("--shared-runs-dir", action="store_true",
                   help="--runs-dir is a local path on a mount every Ray node shares (NFS, EFS, Filestore); "
                        "needed for a local path on a cluster of several nodes (or DPSWEEP_SHARED_RUNS_DIR=1)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan without starting Ray")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep (--name, or the latest sweep of this file)")
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from dpsweep.results import ResultStore
    from dpsweep.sweep.runner import inspect_sweep, resolve_sweep_id, run_sweep
    from dpsweep.sweep.spec import load_spec

    spec = load_spec(args.file)
    if args.store:
        from dataclasses import replace

        spec = replace(spec, store=args.store)
    check_sweep_store(spec, name=args.name, create=not args.dry_run)
    spec, plan = inspect_sweep(spec)
    print("\n".join(plan.lines()))
    if args.dry_run:
        return EXIT_OK
    store = ResultStore(spec.store)
    sweep_id = resolve_sweep_id(spec, store, dataset=plan.dataset, name=args.name, resume=args.resume)
    print(f"sweep id {sweep_id}; rows go to {spec.store}", flush=True)
    outcome = run_sweep(spec, plan, sweep_id=sweep_id, store=store, address=args.address, runs_dir=args.runs_dir,
                        runs_dir_shared=args.shared_runs_dir)
    print_front(store, dataset=plan.dataset, sweep_id=sweep_id)
    print(f"\n{outcome.rows_written} rows written in {outcome.seconds:.0f} s. Query them with:\n"
          f"  dpsweep pareto --store {spec.store} --dataset {plan.dataset}\n"
          f"  dpsweep best --store {spec.store} --dataset {plan.dataset} --max-epsilon 8\n"
          f"  dpsweep report --store {spec.store} --out results/report")
    p = outcome.progress
    if p.recovered:
        from dpsweep.results.recovery import recovery_folder

        folder = recovery_folder(args.runs_dir)
        print(f"dpsweep: error: {len(p.recovered)} trial row(s) could not be written to {spec.store} and are "
              f"saved in {folder}; once the store is fixed, publish them with `dpsweep store import-rows "
              f"{folder}/*.json --store {spec.store}`", file=sys.stderr)
        return EXIT_BAD_INPUT
    if p.done and p.failed == p.done:
        print("dpsweep: every trial failed; see the errors in the store rows and the Ray logs", file=sys.stderr)
        return EXIT_ALL_FAILED
    return EXIT_OK


def check_sweep_store(spec, *, name: str | None, create: bool) -> None:
    """Before any data, model or Ray: the store takes a row, and the dataset name and sweep id are valid."""
    from dpsweep.preflight import check_dataset_for_store, check_store_target, expected_dataset_name

    if spec.dataset_name is not None:
        dataset, source = spec.dataset_name, f"dataset.name in {spec.source}"
    else:
        dataset, source = expected_dataset_name(spec.base.dataset_format, spec.base.data_path)
    check_dataset_for_store(dataset, source=source, fix=f"set dataset.name in {spec.source}")
    ids = {f"{spec.source}: name": spec.name, **({"--name": name} if name is not None else {})}
    check_store_target(spec.store, dataset=dataset, ids=ids, create=create)


def _sweep_table(store, *, dataset: str, sweep_id: str | None):
    import pyarrow.compute as pc

    table = store.read(dataset)
    return table if sweep_id is None else table.filter(pc.equal(table["sweep_id"], sweep_id))


def front_rows(store, *, dataset: str, sweep_id: str | None = None) -> list[dict]:
    """Pareto front (weighted F1 against ε) of one sweep's rows, or of the whole dataset.

    A random-stopping sweep releases one trial per target: its front is those trials.
    """
    import pyarrow.compute as pc

    from dpsweep.results.pareto import pareto_front

    table = _sweep_table(store, dataset=dataset, sweep_id=sweep_id)
    released = table.filter(pc.fill_null(pc.equal(table["released"], 1), False))
    if released.num_rows:
        return sorted(released.to_pylist(), key=lambda r: r["epsilon_target"])
    return pareto_front(table, dataset=dataset, metric="weighted_f1").to_pylist()


def print_front(store, *, dataset: str, sweep_id: str | None = None) -> list[dict]:
    """The sweep's closing summary: its front, and what each ε shown covers."""
    rows = front_rows(store, dataset=dataset, sweep_id=sweep_id)
    release = any(r.get("released") == 1 for r in rows)
    what = ("released models, one per target; ε release covers the whole tuning process" if release
            else "validation; ε per trial, excludes tuning")
    print(f"\nPareto front, {dataset} ({what}):")
    print(f"{'ε target':>9} {'ε trial':>8} {'ε release':>10} {'weighted F1':>12} {'macro F1':>9} {'σ':>6} "
          f"{'C':>6} {'rank':>5} {'lr':>8} {'steps':>6}")
    for r in rows:
        target = "inf" if math.isinf(r["epsilon_target"]) else f"{r['epsilon_target']:g}"
        spent = "inf" if math.isinf(r["epsilon"]) else f"{r['epsilon']:.3g}"
        released = f"{r['epsilon_release']:.4g}" if r.get("epsilon_release") is not None else "-"
        sigma = f"{r['sigma']:.3g}" if r["sigma"] else "-"
        clip = f"{r['clip']:.3g}" if r["clip"] is not None and not math.isinf(r["epsilon"]) else "-"
        print(f"{target:>9} {spent:>8} {released:>10} {r['weighted_f1']:>12.4f} {r['macro_f1']:>9.4f} {sigma:>6} "
              f"{clip:>6} {r['rank']:>5} {r['lr']:>8.2g} {r['steps']:>6}")
    if not rows:
        print("  (no completed trial)")
    _print_coverage(store, dataset=dataset, sweep_id=sweep_id, composed=not release)
    return rows


def _print_coverage(store, *, dataset: str, sweep_id: str | None, composed: bool) -> None:
    from dpsweep.results.coverage import composed_epsilon_of, coverage_lines

    table = _sweep_table(store, dataset=dataset, sweep_id=sweep_id)
    total = composed_epsilon_of(table, dataset) if composed else None
    for line in coverage_lines(table, dataset, composed=total):
        print(f"note: {line}")
