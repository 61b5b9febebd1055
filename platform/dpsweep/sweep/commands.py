"""`dpsweep sweep FILE.yaml`: validate, plan, run on Ray, print the Pareto front.

Exit codes (dpsweep's one scheme, see dpsweep.cli): 0 the sweep ran (or the dry run
planned); 2 bad input (one line, before any data, model or Ray is touched), or rows the
store could not take (saved in recovered-rows/ for `dpsweep store import-rows`); 4 every
trial failed; 6 (with --address) the driver process ended abnormally, as Ray ends it when the
cluster it joined stops: one line says what is stored and how to resume (dpsweep.sweep.supervise);
130 interrupted (SIGINT): one line says what is stored and how to resume.

`dpsweep ray cleanup` stops what private Ray sessions of killed sweeps left running.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

EXIT_OK, EXIT_BAD_INPUT, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 2, 4, 130


def add_sweep_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="search hyperparameters under fixed ε targets on Ray Tune + Optuna",
        description="Run the search space in FILE.yaml: for each ε target (and inf, the non-private "
                    "baseline) an Optuna search on Ray Tune; every trial becomes one row in the "
                    "results store; ends by printing the Pareto front. Exit 0 ok, 2 bad input, "
                    "4 every trial failed, 6 (with --address) the driver ended abnormally, e.g. the Ray cluster "
                    "stopped, 130 interrupted (Ctrl-C); for 6 and 130 the line printed says what is stored "
                    "and how to resume.")
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
                   help="continue an interrupted sweep (--name, or the latest sweep of this file); finished "
                        "rows a killed run left unpublished are published first, not run again")
    p.set_defaults(func=run_sweep_command)


def add_ray_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ray", help="housekeeping of the private Ray instances sweeps start")
    rsub = p.add_subparsers(dest="ray_command", required=True)
    cleanup = rsub.add_parser(
        "cleanup", help="stop what private Ray sessions of killed sweeps left running; remove their folders",
        description="A sweep killed with SIGKILL cannot stop its private Ray: its agents run on. Every sweep "
                    "start cleans these up; this command does it now. Sessions of running sweeps are left alone.")
    cleanup.set_defaults(func=run_ray_cleanup)


def run_ray_cleanup(_args: argparse.Namespace) -> int:
    from dpsweep.sweep.private_ray import cleanup_stale_sessions, private_parent

    cleaned = cleanup_stale_sessions()
    stopped = sum(c.stopped for c in cleaned)
    print(f"ray cleanup of {private_parent()}: {len(cleaned)} stale session(s) removed, "
          f"{stopped} process(es) stopped", file=sys.stderr)
    return EXIT_OK


def run_sweep_command(args: argparse.Namespace) -> int:
    """With --address the sweep runs in a supervised child (see dpsweep.sweep.supervise)."""
    from dpsweep.sweep import supervise

    if args.address and not args.dry_run and supervise.child_folder() is None:
        return supervise.run_supervised(sweep_argv(args), file=args.file, address=args.address,
                                        runs_dir=args.runs_dir)
    with supervise.exit_marker():
        return _run_sweep(args)


def sweep_argv(args: argparse.Namespace) -> list[str]:
    """The `dpsweep` arguments that run this sweep again (every flag of add_sweep_command)."""
    optional = {"--address": args.address, "--store": args.store, "--name": args.name}
    return ["sweep", args.file, *[x for flag, value in optional.items() if value is not None for x in (flag, value)],
            "--runs-dir", args.runs_dir, *(["--dry-run"] if args.dry_run else []),
            *(["--resume"] if args.resume else [])]


def _run_sweep(args: argparse.Namespace) -> int:
    from dpsweep.results import ResultStore
    from dpsweep.sweep import supervise
    from dpsweep.sweep.runner import SweepInterrupted, inspect_sweep, resolve_sweep_id, run_sweep
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
    if args.resume:
        publish_unfinished_writes(store, spec, name=args.name)
    sweep_id = resolve_sweep_id(spec, store, dataset=plan.dataset, name=args.name, resume=args.resume)
    print(f"sweep id {sweep_id}; rows go to {spec.store}", flush=True)
    supervise.note(sweep_id=sweep_id, dataset=plan.dataset, store=spec.store)
    record_sweep_references(store, spec, plan)
    try:
        outcome = run_sweep(spec, plan, sweep_id=sweep_id, store=store, address=args.address,
                            runs_dir=args.runs_dir, runs_dir_shared=args.shared_runs_dir)
    except SweepInterrupted:
        return _interrupted(args, spec, store, dataset=plan.dataset, sweep_id=sweep_id)
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


def record_sweep_references(store, spec, plan) -> None:
    """The non-private TF-IDF peer and the floors of this split, from the corpus already read
    (skipped when stored: a resumed sweep or a second sweep on the same split)."""
    from dpsweep.bench.references import record_references

    record_references(store, plan.corpus, spec.base, dataset=plan.dataset, log=lambda line: print(line, flush=True))


def publish_unfinished_writes(store, spec, *, name: str | None) -> None:
    """`dpsweep store repair` for the sweep being resumed: rows its killed driver wrote but did
    not publish become visible (so their trials are not run again); broken ones are removed.

    Only that sweep's temp files, and without the repair's minimum age: its driver is gone.
    """
    from dpsweep.results.recovery import repair_store
    from dpsweep.sweep.runner import default_id_pattern

    pattern = re.compile(re.escape(name) if name is not None else default_id_pattern(spec.name).pattern)
    actions = repair_store(store, min_age_s=0, only=lambda stem: bool(re.fullmatch(f"{pattern.pattern}__.*", stem)))
    published = sum(a.action == "published" for a in actions)
    removed = sum(a.action == "removed" for a in actions)
    if published or removed:
        print(f"[dpsweep] resume: published {published} finished row(s) an interrupted run had not published; "
              f"removed {removed} unfinished or duplicate temp file(s)", file=sys.stderr, flush=True)


def _interrupted(args: argparse.Namespace, spec, store, *, dataset: str, sweep_id: str) -> int:
    """SIGINT: one line saying what is stored and the command that resumes the sweep."""
    from dpsweep.sweep.runner import stored_rows
    from dpsweep.sweep.supervise import resume_command

    rows = stored_rows(store, dataset=dataset, sweep_id=sweep_id)
    command = resume_command(args.file, store=spec.store, sweep_id=sweep_id, runs_dir=args.runs_dir,
                             address=args.address)
    print(f"dpsweep: interrupted: {len(rows)} trial(s) of sweep {sweep_id} are stored in {spec.store} "
          f"(dataset {dataset}); resume with: {command}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


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
          f"{'C':>6} {'method':>7} {'rank':>5} {'lr':>8} {'steps':>6}")
    for r in rows:
        target = "inf" if math.isinf(r["epsilon_target"]) else f"{r['epsilon_target']:g}"
        spent = "inf" if math.isinf(r["epsilon"]) else f"{r['epsilon']:.3g}"
        released = f"{r['epsilon_release']:.4g}" if r.get("epsilon_release") is not None else "-"
        sigma = f"{r['sigma']:.3g}" if r["sigma"] else "-"
        clip = f"{r['clip']:.3g}" if r["clip"] is not None and not math.isinf(r["epsilon"]) else "-"
        print(f"{target:>9} {spent:>8} {released:>10} {r['weighted_f1']:>12.4f} {r['macro_f1']:>9.4f} {sigma:>6} "
              f"{clip:>6} {r.get('method') or 'lora':>7} {r['rank']:>5} {r['lr']:>8.2g} {r['steps']:>6}")
    if not rows:
        print("  (no completed trial)")
    _print_references(store, dataset=dataset, rows=rows)
    _print_coverage(store, dataset=dataset, sweep_id=sweep_id, composed=not release)
    return rows


def _print_references(store, *, dataset: str, rows: list[dict]) -> None:
    import pyarrow as pa

    from dpsweep.results.references import read_references, reference_lines

    if rows:
        lines = reference_lines(read_references(store, dataset), pa.Table.from_pylist(rows), dataset=dataset,
                                metric="weighted_f1", store_uri=store.uri)
        print("\n".join(lines))


def _print_coverage(store, *, dataset: str, sweep_id: str | None, composed: bool) -> None:
    from dpsweep.results.coverage import composed_epsilon_of, coverage_lines

    table = _sweep_table(store, dataset=dataset, sweep_id=sweep_id)
    total = composed_epsilon_of(table, dataset) if composed else None
    for line in coverage_lines(table, dataset, composed=total):
        print(f"note: {line}")
