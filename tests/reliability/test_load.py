"""Load: 16 writer processes append 100 rows each into one store while `dpsweep pareto`
queries it in a loop. Nothing may be lost or duplicated and no query may fail.

Measured on the busy 2-core box (load average 13): 49 s in all, 20 s of appends, 81 rows/s.
`dpsweep bench store-load --store DIR` runs the same and prints rows/s.
"""

from __future__ import annotations

import pytest

from dpsweep.bench.store_load import run_store_load


@pytest.mark.cli_subprocess
@pytest.mark.slow(reason="a load test (16 writer processes, about 25 s); `make test-slow`")
def test_16_writers_x_100_rows_while_pareto_queries(tmp_path):
    report = run_store_load(tmp_path / "store", writers=16, rows=100, timeout_s=600)
    print(report.line())  # rows/s, shown with pytest -s
    assert report.write_errors == 0
    assert report.rows_lost == 0 and report.rows_duplicated == 0
    assert report.rows_stored == report.rows_expected == 1600
    assert report.queries > 0 and report.query_failures == 0
