"""The static report and the benchmark run on small inputs."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    for text in ("mimic-cxr", "ct-rate", "Privacy cost", "σ", "trial_id", "No references stored"):
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


# ---- the plot and the self-contained page (issue 14) ------------------------------------------

def _trials_and_references(store, make_row) -> None:
    from tests.results.test_results_references import _store_refs

    for i, target in enumerate((0.5, 1.0, 2.0, 4.0, 8.0)):
        store.append(make_row(trial_id=f"f{i}", epsilon_target=target, epsilon=target * 0.95,
                              weighted_f1=0.42 + 0.04 * i))
        store.append(make_row(trial_id=f"g{i}", epsilon_target=target, epsilon=target * 0.9,
                              weighted_f1=0.40 + 0.03 * i))
    store.append(make_row(trial_id="np", private=False, weighted_f1=0.62))
    _store_refs(store)


def test_plot_draws_references_words_and_plain_ticks(store, make_row) -> None:
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from dpsweep.results.references import read_references
    from dpsweep.results.report import FRONT_COLOUR, pareto_figure

    _trials_and_references(store, make_row)
    fig = pareto_figure(store.read(), dataset="mimic-cxr", metric="weighted_f1", references=read_references(store))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "validation weighted F1, threshold 0.5"
    assert ax.get_xlabel() == "ε per trial (δ = 1e-05)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "2", "4", "8", "non-private"]
    assert [t.get_text() for t in ax.get_xticklabels(minor=True)] == []
    legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles,
                                                strict=True)}
    assert "TF-IDF + logistic regression (non-private): 0.777" in legend
    assert "floor: every label positive: 0.400" in legend and "floor: label frequencies: 0.286" in legend
    assert {y for line in ax.get_lines() for y in line.get_ydata()} >= {0.777, 0.4, 0.286}
    strong = mcolors.to_rgba(FRONT_COLOUR)[:3]

    def colour(handle) -> tuple[float, ...]:
        c = handle.get_color() if isinstance(handle, Line2D) else handle.get_facecolor()[0]
        return tuple(round(v, 6) for v in mcolors.to_rgba(c)[:3])

    in_colour = [name for name, handle in legend.items() if colour(handle) == tuple(round(v, 6) for v in strong)]
    assert len(in_colour) == 1 and in_colour[0].startswith("Pareto front (")
    grey = [name for name, handle in legend.items() if len(set(colour(handle))) == 1]
    assert sorted(grey) == sorted(n for n in legend if n not in in_colour)  # red = green = blue
    plt.close(fig)


def test_release_scope_labels_the_release_epsilon(store, make_row) -> None:
    from dpsweep.results.report import pareto_figure

    store.append(make_row(trial_id="r", epsilon_target=8.0, epsilon=2.0, epsilon_scope="release",
                          epsilon_release=7.5, released=1, tuning_trials=3))
    rows = store.read()
    assert delta_label(rows).startswith("ε of the release (tuning included")
    fig = pareto_figure(rows, dataset="mimic-cxr", metric="weighted_f1")
    xs = [x for line in fig.axes[0].get_lines() for x in line.get_xdata()]
    assert 7.5 in xs and 2.0 not in xs  # drawn at the release's ε, not the trial's


def test_index_html_embeds_its_images(store, make_row, tmp_path) -> None:
    import base64
    import re

    _trials_and_references(store, make_row)
    store.append(make_row(trial_id="c", dataset="ct-rate", private=False, weighted_f1=0.6))
    page = write_report(store, tmp_path / "report")[-1].read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "data:image/png;base64," in page and ".png\"" not in page
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TF-IDF + logistic regression (non-private)" in page and "not private" in page


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
def test_report_renders_in_headless_chromium(store, make_row, tmp_path) -> None:
    """The self-contained page, moved away from its PNG files, still shows the plot."""
    import os
    import shutil

    import matplotlib.image as mpimg

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} absent: install Debian's chromium (apt-get install -y --no-install-recommends "
                    "chromium) to render the report in a headless browser")
    _trials_and_references(store, make_row)
    page = write_report(store, tmp_path / "report")[-1]
    alone = tmp_path / "alone" / "index.html"  # no PNG beside it: only embedded images can show
    alone.parent.mkdir()
    shutil.copy(page, alone)
    shot = tmp_path / "shot.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1280,1400", alone.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1400, 1280)
    assert pixels.std() > 0.05  # not a blank page
    red = (pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.35) & (pixels[..., 2] < 0.35)
    assert red.sum() > 200  # the front's red: the embedded plot was drawn (the page's text is black)
