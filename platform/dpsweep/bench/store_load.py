"""Load on the results store: many writer processes append while `dpsweep pareto` queries.

`dpsweep bench store-load` (and tests/reliability/test_load.py) start ``writers``
processes that each append ``rows`` rows through :meth:`ResultStore.append` (rows built
by :func:`dpsweep.train.record.result_row`, as a sweep builds them), while one more
process runs ``dpsweep pareto`` on the same store in a loop until they finish. Then every
row is counted: none may be lost or duplicated, and no query may fail (exit 5, "nothing
found yet", is not a failure).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

DATASET = "load-test"
SWEEP = "load"


@dataclass(frozen=True)
class LoadReport:
    writers: int
    rows_per_writer: int
    rows_expected: int
    rows_stored: int
    rows_lost: int
    rows_duplicated: int
    write_errors: int
    queries: int
    query_failures: int
    write_seconds: float
    rows_per_s: float

    def line(self) -> str:
        return (f"{self.writers} writers x {self.rows_per_writer} rows: {self.rows_stored}/{self.rows_expected} "
                f"stored, {self.rows_lost} lost, {self.rows_duplicated} duplicated, {self.write_errors} write "
                f"errors; {self.queries} pareto queries, {self.query_failures} failed; "
                f"{self.rows_per_s:.0f} rows/s ({self.write_seconds:.1f} s)")


def load_row(writer: int, index: int) -> dict:
    """A completed private trial's row, built as a sweep builds it (config, ledger, metrics)."""
    from dpsweep.privacy.ledger import PrivacyLedger
    from dpsweep.settings import TrialConfig
    from dpsweep.train.metrics import Metrics
    from dpsweep.train.record import TrialResult, result_row

    f1 = 0.3 + 0.6 * ((writer * 7919 + index * 104729) % 1000) / 1000
    config = TrialConfig().override(source="load test", dataset_format="mimic-cxr", data_path="data/none",
                                    epsilon=8.0, sigma=1.0 + index % 5 / 10, lr=1e-3)
    ledger = PrivacyLedger(epsilon_target=8.0, epsilon=7.5, delta=1e-5, sigma=config.sigma, clip=1.0,
                           sample_rate=0.01, steps=100 + index, accountant="rdp")
    metrics = Metrics(weighted_f1=f1, macro_f1=f1 * 0.9, micro_f1=f1, per_label_f1={"Edema": f1},
                      auroc_macro=0.8)
    result = TrialResult(status="completed", config=config, ledger=ledger, dataset=DATASET, n_train=1000,
                         n_val=200, epochs=1.0, val=metrics)
    return result_row(result, sweep_id=SWEEP, trial_id=f"w{writer:02d}-r{index:04d}")


def _writer(store: str, rows: list[dict], ready, queue) -> None:
    from dpsweep.results import ResultStore

    target = ResultStore(store)
    errors = 0
    ready.wait()  # every writer has started: the clock starts now
    for row in rows:
        try:
            target.append(row)
        except Exception:  # noqa: BLE001 - counted and reported, never hidden
            errors += 1
    queue.put(errors)


def _querier(store: str, stop, queue) -> None:
    """`dpsweep pareto` as a user runs it (a fresh process each time), in a loop."""
    import subprocess
    import sys

    counts: Counter[str] = Counter()
    while not stop.is_set():
        done = subprocess.run([sys.executable, "-m", "dpsweep.cli", "pareto", "--store", store, "--dataset", DATASET],
                              capture_output=True, text=True, check=False)
        counts["ok" if done.returncode in (0, 5) else "failed"] += 1
    queue.put(dict(counts))


def run_store_load(store: str | Path, *, writers: int = 16, rows: int = 100, timeout_s: float = 600) -> LoadReport:
    """Run the load and count what the store holds afterwards (see the module docstring)."""
    from dpsweep.results import ResultStore

    store = str(store)
    ctx = mp.get_context("spawn")  # no forked Ray/pyarrow thread state in the children
    ready, stop, queue = ctx.Barrier(writers + 1), ctx.Event(), ctx.Queue()
    # Rows are built here (one process imports the training code) and handed to the writers,
    # which import only the results store, as the sweep driver writes rows others built.
    built = [[load_row(w, i) for i in range(rows)] for w in range(writers)]
    procs = [ctx.Process(target=_writer, args=(store, built[w], ready, queue)) for w in range(writers)]
    querier = ctx.Process(target=_querier, args=(store, stop, queue))
    for p in [*procs, querier]:
        p.start()
    ready.wait(timeout=timeout_s)
    began = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    errors = [queue.get(timeout=max(1.0, deadline - time.monotonic())) for _ in procs]
    seconds = time.perf_counter() - began
    stop.set()
    queries = queue.get(timeout=120)
    for p in [*procs, querier]:
        p.join(timeout=60)
    table = ResultStore(store).read(DATASET, columns=["trial_id"])
    seen = Counter(table["trial_id"].to_pylist())
    expected = {f"w{w:02d}-r{i:04d}" for w in range(writers) for i in range(rows)}
    return LoadReport(writers=writers, rows_per_writer=rows, rows_expected=len(expected), rows_stored=sum(seen.values()),
                      rows_lost=len(expected - set(seen)), rows_duplicated=sum(n - 1 for n in seen.values() if n > 1)
                      + len(set(seen) - expected), write_errors=sum(errors),
                      queries=sum(queries.values()), query_failures=queries.get("failed", 0),
                      write_seconds=seconds, rows_per_s=len(expected) / seconds if seconds else math.inf)


def report_json(report: LoadReport) -> str:
    return json.dumps(asdict(report))
