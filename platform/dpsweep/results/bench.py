"""Benchmark: how long ``dpsweep pareto`` and ``dpsweep best`` take on a large store.

Builds a synthetic store of ``n_rows`` trial rows over three datasets, then times the
two CLI handlers end to end as a user runs them (open the store, read the dataset's
partition, compute, format the output), median of a few runs. Target: <= 1 s each for
100,000 rows.

To build the store quickly, rows are written in batches of many rows per file
(``ResultStore.append_table``), not one file per trial: same schema, same hive layout,
same reader. A real store of 100,000 one-row files reads more slowly (per-file overhead).

Run ``python -m dpsweep.results.bench [--rows N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dpsweep.results.schema import SCHEMA_VERSION
from dpsweep.results.store import ResultStore

DATASETS = ("mimic-cxr", "ct-rate", "labelled-csv")
TARGETS = (0.01, 0.1, 1.0, 10.0, np.inf)
ROWS_PER_FILE = 10_000


def synthetic_table(n_rows: int, *, seed: int = 0) -> pa.Table:
    """``n_rows`` plausible completed trial rows (random hyperparameters and metrics)."""
    rng = np.random.default_rng(seed)
    target = rng.choice(np.array(TARGETS), n_rows)
    private = np.isfinite(target)
    epsilon = np.where(private, target * rng.uniform(0.8, 1.0, n_rows), np.inf)
    quality = np.where(private, np.log10(np.where(private, target, 1.0)) + 3, 5.0) / 5.0
    weighted = np.clip(0.4 + 0.45 * quality + rng.normal(0, 0.05, n_rows), 0, 1)
    sigma = np.where(private, rng.uniform(0.5, 3.0, n_rows), 0.0)
    rank = rng.choice([4, 8, 16], n_rows)
    lr = 10 ** rng.uniform(-4, -2, n_rows)
    configs = [json.dumps({"model": "minilm", "lora": {"rank": int(r)}, "lr": float(v),
                           "privacy": {"epsilon": float(t), "delta": 1e-5}})
               for r, v, t in zip(rank, lr, target, strict=True)]
    started = datetime(2025, 1, 1, tzinfo=timezone.utc)
    columns: dict[str, Any] = {
        "schema_version": pa.array(np.full(n_rows, SCHEMA_VERSION, np.int32)),
        "sweep_id": [f"bench-{i // 1000:04d}" for i in range(n_rows)],
        "trial_id": [f"t{i:07d}" for i in range(n_rows)],
        "dataset": rng.choice(np.array(DATASETS), n_rows),
        "dataset_format": "mimic-cxr", "model": "minilm", "status": "completed",
        "epsilon_target": target, "epsilon": epsilon, "delta": np.full(n_rows, 1e-5),
        "sigma": sigma, "clip": rng.uniform(0.1, 2.0, n_rows),
        "sample_rate": rng.uniform(0.001, 0.05, n_rows), "steps": rng.integers(10, 5000, n_rows),
        "accountant": "prv", "privacy_unit": "record", "noise": "secure",
        "rank": rank, "lr": lr, "batch_size": rng.choice([64, 128, 256], n_rows),
        "weighted_f1": weighted, "macro_f1": weighted * 0.8,
        "started_at": pa.array(np.full(n_rows, started), pa.timestamp("us", tz="UTC")),
        "dpsweep_version": "bench", "config_json": configs,
    }
    columns = {k: ([v] * n_rows if isinstance(v, str) else v) for k, v in columns.items()}
    return pa.table(columns)


def _median_seconds(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cli(argv: list[str]) -> Callable[[], None]:
    from dpsweep.results.commands import add_results_commands

    parser = argparse.ArgumentParser(prog="dpsweep")
    add_results_commands(parser.add_subparsers(dest="command", required=True))

    def call() -> None:
        args = parser.parse_args(argv)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = args.func(args)
        if code != 0:
            raise RuntimeError(f"dpsweep {' '.join(argv)} exited {code}")

    return call


def bench_queries(n_rows: int = 100_000, out_dir: str | Path | None = None, *,
                  repeats: int = 5) -> dict[str, float]:
    """Build a synthetic store of ``n_rows`` rows and time ``pareto`` and ``best`` on it.

    Returns seconds (median of ``repeats``) for pareto, best and reading the whole
    store, the number of rows and files, and the store size on disk in MB.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp) / "store"
        store = ResultStore(root)
        table = synthetic_table(n_rows)
        start = time.perf_counter()
        n_files = 0
        for offset in range(0, n_rows, ROWS_PER_FILE):
            n_files += len(store.append_table(table.slice(offset, ROWS_PER_FILE)))
        write_s = time.perf_counter() - start
        files = list(root.rglob("*.parquet"))
        common = ["--store", str(root), "--dataset", DATASETS[0]]
        return {
            "n_rows": n_rows,
            "n_files": n_files,
            "store_mb": sum(f.stat().st_size for f in files) / 1e6,
            "write_s": write_s,
            "pareto_s": _median_seconds(_cli(["pareto", *common, "--format", "json"]), repeats),
            "best_s": _median_seconds(_cli(["best", *common, "--max-epsilon", "1"]), repeats),
            "read_all_s": _median_seconds(lambda: store.read(), repeats),
        }


def main() -> None:
    """Print the benchmark as ``key: value`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", default=None, help="keep the store in this folder")
    args = parser.parse_args()
    for key, value in bench_queries(args.rows, args.out).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
