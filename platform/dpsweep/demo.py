"""`make demo`: the quickstart sweep on the embedded model, then its Pareto front.

Writes the synthetic MIMIC-CXR corpus (real on-disk layout) and a public one of other
synthetic studies (the warm start's, costing no ε) if they are absent, runs
search_spaces/quickstart.yaml on a local Ray instance (three ε targets plus the
non-private baseline, Optuna on Ray Tune), prints the Pareto front and writes the HTML
report. Sized to finish in about five minutes on a 2-core laptop.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from dpsweep.console import quiet_libraries

    quiet_libraries()
    parser = argparse.ArgumentParser(prog="python -m dpsweep.demo", description=__doc__)
    parser.add_argument("--space", default="search_spaces/quickstart.yaml", help="search space to run")
    parser.add_argument("--n", type=int, default=1500, help="studies in the synthetic corpus, if written")
    parser.add_argument("--store", default=None, help="results store (default: the space's store)")
    parser.add_argument("--report", default="results/report", help="where the HTML report goes")
    args = parser.parse_args(argv)

    from dpsweep.data import write_synthetic
    from dpsweep.errors import UserInputError
    from dpsweep.results import ResultStore
    from dpsweep.results.report import write_report
    from dpsweep.sweep.commands import print_front, record_sweep_references
    from dpsweep.sweep.runner import default_sweep_id, inspect_sweep, run_sweep
    from dpsweep.sweep.spec import load_spec

    try:
        spec = load_spec(args.space)
        data = Path(spec.base.data_path)
        if not data.exists():
            print(f"[dpsweep] writing a synthetic MIMIC-CXR corpus of {args.n} studies to {data}", file=sys.stderr)
            write_synthetic(spec.base.dataset_format, data, n=args.n, seed=0)
        public = Path(spec.base.public_path) if spec.base.public_path else None
        if public is not None and not public.exists():  # other studies (seed 1): none of the private ones
            print(f"[dpsweep] writing a public synthetic corpus of {args.n} other studies to {public}",
                  file=sys.stderr)
            write_synthetic(spec.base.public_format, public, n=args.n, seed=1)
        if args.store:
            from dataclasses import replace

            spec = replace(spec, store=args.store)
        spec, plan = inspect_sweep(spec)
    except UserInputError as exc:
        print(f"dpsweep demo: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(plan.lines()), flush=True)
    store = ResultStore(spec.store)
    record_sweep_references(store, spec, plan)
    outcome = run_sweep(spec, plan, sweep_id=default_sweep_id(spec), store=store)
    print_front(store, dataset=plan.dataset, sweep_id=outcome.sweep_id)
    report = write_report(store, args.report)[-1]
    print(f"\ndemo sweep {outcome.sweep_id}: {outcome.rows_written} trials in {outcome.seconds:.0f} s; "
          f"rows in {spec.store}, report at {report}")
    print(f"next: dpsweep pareto --store {spec.store} --dataset {plan.dataset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
