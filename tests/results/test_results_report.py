"""The static report and the benchmark run on small inputs."""

from __future__ import annotations

import subprocess
import sys

from dpsweep.results.bench import bench_queries, synthetic_table
from dpsweep.results.report import NON_PRIVATE_LABEL, delta_label, write_report


def test_write_report_makes_plots_and_index(store, make_row, tmp_path) -> None:
    store.append(make_row(trial_id="a", epsilon_target=0.1, epsilon=0.1, weighted_f1=0.5))
    store.append(make_row(trial_id="b", weighted_f1=0.7))
    store.append(make_row(trial_id="np", private=False, weighted_f1=0.9))
    store.append(make_row(trial_id="c", dataset="ct-rate", private=False, weighted_f1=0.6))
    paths = write_report(store, tmp_path / "report")
    assert [p.name for p in paths] == ["pareto_ct-rate.png", "pareto_mimic-cxr.png", "index.html"]
    assert all(p.stat().st_size > 1000 for p in paths[:2])
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths[-1].read_text(encoding="utf-8")
    for text in ("mimic-cxr", "ct-rate", "pareto_mimic-cxr.png", "Privacy cost", "σ", "trial_id"):
        assert text in page
    assert "config_json" not in page and "{" not in page.split("</style>")[1]
    assert delta_label(store.read()) == "ε per trial (δ = 1e-05)"
    assert "∞" in NON_PRIVATE_LABEL


def test_report_of_an_empty_table(tmp_path) -> None:
    paths = write_report(synthetic_table(0), tmp_path)
    assert [p.name for p in paths] == ["index.html"]


def test_bench_small(tmp_path) -> None:
    result = bench_queries(3000, tmp_path / "store", repeats=1)
    assert result["n_rows"] == 3000 and result["store_mb"] > 0
    assert result["pareto_s"] < 5 and result["best_s"] < 5


def test_results_import_needs_no_torch_ray_pandas_or_matplotlib() -> None:
    code = ("import sys, dpsweep.results, dpsweep.results.commands; "
            "print([m for m in ('torch', 'ray', 'pandas', 'matplotlib', 'yaml') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
