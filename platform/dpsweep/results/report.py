"""A static report of a results store: per dataset a Pareto plot and tables, one index.html.

Why static files: they open anywhere (a laptop, a CI artifact, a shared drive) with no
server; index.html embeds its plots (data URIs), so it is one file to send. Only numbers
and config values are shown; no report text exists in the store. Each plot draws the
split's references (the non-private TF-IDF peer and the two floors) as lines.
matplotlib is optional (``pip install 'dpsweep[plot]'``) and imported only here.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dpsweep.results.coverage import coverage_lines
from dpsweep.results.pareto import check_metric, completed_rows, pareto_front
from dpsweep.results.queries import privacy_cost
from dpsweep.results.references import (
    FLOORS,
    NON_PRIVATE_NOTE,
    REFERENCE_KINDS,
    read_references,
    references_for,
    split_text,
)
from dpsweep.results.store import ResultStore

NON_PRIVATE_LABEL = "non-private (ε = ∞)"
NON_PRIVATE_TICK = "non-private"
FRONT_COLUMNS = (("ε", "epsilon"), ("σ", "sigma"), ("C", "clip"), ("q", "sample_rate"),
                 ("steps", "steps"), ("method", "method"), ("rank", "rank"), ("lr", "lr"), ("trial_id", "trial_id"))
METRIC_WORDS = {
    "weighted_f1": "validation weighted F1, threshold 0.5",
    "macro_f1": "validation macro F1, threshold 0.5",
    "micro_f1": "validation micro F1, threshold 0.5",
    "auroc_macro": "validation macro AUROC",
    "weighted_f1_tuned": "validation weighted F1, per-label thresholds tuned on validation",
    "macro_f1_tuned": "validation macro F1, per-label thresholds tuned on validation",
}
NICE_EPSILONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
FRONT_COLOUR, TRIAL_COLOUR = "tab:red", "0.62"
REFERENCE_STYLES = {"tfidf_logreg": ("0.15", "--"), "all_positive": ("0.4", ":"), "label_frequency": ("0.4", "-.")}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'dpsweep[plot]' "
                          "(or pip install matplotlib)") from exc
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def metric_words(metric: str) -> str:
    """The y-axis label: the metric in words (``validation weighted F1, threshold 0.5``)."""
    return METRIC_WORDS.get(metric, metric.replace("_", " "))


def _short_words(metric: str) -> str:
    """``validation weighted F1``: the metric in words without its threshold (titles)."""
    return metric_words(metric).split(",")[0]


def _release_scope(rows: pa.Table) -> bool:
    """Every DP row is a random-stopping row with its release ε: the axis is the release's ε."""
    if "epsilon_scope" not in rows.column_names or "epsilon_release" not in rows.column_names:
        return False
    dp = rows.filter(pc.is_finite(rows["epsilon"]))
    return dp.num_rows > 0 and all(s == "release" for s in dp["epsilon_scope"].to_pylist()) \
        and dp["epsilon_release"].null_count == 0


def delta_label(rows: pa.Table) -> str:
    """The x-axis label: ``ε per trial (δ = 1e-05)``, or ``ε of the release (...)`` when every DP
    row is a random-stopping row; the range of δ when trials differ."""
    what = "ε of the release (tuning included" if _release_scope(rows) else "ε per trial ("
    deltas = rows.filter(pc.is_finite(rows["epsilon"]))["delta"].drop_null()
    values = sorted(set(deltas.to_pylist()))
    sep = "; " if what.endswith("included") else ""
    if not values:
        return what.rstrip(" (") + (")" if sep else "")
    if len(values) == 1:
        return f"{what}{sep}δ = {values[0]:.3g})"
    return f"{what}{sep}δ = {values[0]:.3g} … {values[-1]:.3g})"


def plotted_rows(table: pa.Table, *, dataset: str, metric: str) -> pa.Table:
    """Completed rows with their ε on the plot's axis: the release's ε for random-stopping rows."""
    rows = completed_rows(table, dataset=dataset, metric=metric)
    if not _release_scope(rows):
        return rows
    finite = pc.is_finite(rows["epsilon"])
    epsilon = pc.if_else(finite, rows["epsilon_release"], rows["epsilon"])
    return rows.set_column(rows.schema.get_field_index("epsilon"), "epsilon", epsilon)


def _x_ticks(rows: pa.Table, finite_eps: np.ndarray) -> list[float]:
    """ε ticks: the finite targets when few, else round values across the range."""
    targets = sorted({t for t in rows["epsilon_target"].to_pylist() if t is not None and math.isfinite(t)})
    if 0 < len(targets) <= 8:
        return targets
    low, high = (finite_eps.min(), finite_eps.max()) if finite_eps.size else (0.1, 10.0)
    return [v for v in NICE_EPSILONS if low / 2 <= v <= high * 2] or [float(f"{low:.2g}")]


def _non_private_x(ticks: list[float], finite_eps: np.ndarray) -> float:
    top = max([*ticks, *(finite_eps.tolist() if finite_eps.size else [])], default=10.0)
    return top * 4


def _style_x_axis(ax: Any, ticks: list[float], x_np: float) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([*ticks, x_np]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks] + [NON_PRIVATE_TICK])
    ax.set_xlim(min(ticks) / 1.6, x_np * 1.6)
    ax.axvline(math.sqrt(max(ticks) * x_np), color="0.8", linewidth=0.8)  # DP | non-private


def _draw_references(ax: Any, references: list[dict[str, Any]]) -> list[float]:
    """Horizontal lines for the non-private peer and the floors of one split; their values."""
    drawn = []
    for item in references[:1]:  # several splits: the first (the table lists all)
        for kind, value in item["values"].items():
            if value is None:
                continue
            colour, style = REFERENCE_STYLES[kind]
            name = REFERENCE_KINDS[kind] if kind not in FLOORS else f"floor: {REFERENCE_KINDS[kind]}"
            ax.axhline(value, color=colour, linestyle=style, linewidth=1.2, label=f"{name}: {value:.3f}")
            drawn.append(value)
    return drawn


def pareto_figure(table: pa.Table, *, dataset: str, metric: str, references: pa.Table | None = None) -> Any:
    """All completed trials in grey, the front in colour, the non-private peer and floors as lines.

    Non-private trials sit at a labelled position right of every ε; ε ticks are plain numbers.
    Only numbers and the dataset's name are drawn: no report text, no trial or patient id.
    Returns the matplotlib figure (close it after use).
    """
    plt = _pyplot()
    rows = plotted_rows(table, dataset=dataset, metric=metric)
    front = pareto_front(rows, dataset=dataset, metric=metric)
    finite_eps = rows.filter(pc.is_finite(rows["epsilon"]))["epsilon"].to_numpy()
    ticks = _x_ticks(rows, finite_eps)
    x_np = _non_private_x(ticks, finite_eps)

    def xs(t: pa.Table) -> np.ndarray:
        eps = t["epsilon"].to_numpy()
        return np.where(np.isinf(eps), x_np, eps)

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    ax.scatter(xs(rows), rows[metric].to_numpy(), s=16, color=TRIAL_COLOUR, alpha=0.6,
               label=f"trials ({rows.num_rows})")
    if front.num_rows:
        ax.step(xs(front), front[metric].to_numpy(), where="post", color=FRONT_COLOUR, marker="o",
                linewidth=1.8, label=f"Pareto front ({front.num_rows})")
    found = [] if references is None else references_for(references, rows, dataset=dataset, metric=metric)
    drawn = _draw_references(ax, found)
    _style_x_axis(ax, ticks, x_np)
    values = [*rows[metric].to_numpy().tolist(), *drawn]
    if values:
        ax.set_ylim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.05))
    ax.set_xlabel(delta_label(rows))
    ax.set_ylabel(metric_words(metric))
    ax.set_title(f"{dataset}: {_short_words(metric)} against ε")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    return fig


def plot_pareto(table: pa.Table, *, dataset: str, metric: str, path: str | os.PathLike[str],
                references: pa.Table | None = None) -> Path:
    """Save :func:`pareto_figure` as a PNG at ``path``; return the path."""
    plt = _pyplot()
    fig = pareto_figure(table, dataset=dataset, metric=metric, references=references)
    out = Path(path)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "∞" if math.isinf(value) else f"{value:.4g}"
    return html.escape(str(value))


def _html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _references_html(references: pa.Table | None, table: pa.Table, dataset: str, metric: str) -> str:
    rows = completed_rows(table, dataset=dataset, metric=metric)
    found = [] if references is None else references_for(references, rows, dataset=dataset, metric=metric)
    if not found:
        return ("<p class=note>No references stored for this split: a sweep computes them, or "
                "<code>dpsweep store references --compute</code>.</p>")
    tables = "".join(
        f"<p>Split: {html.escape(split_text(f['split']))}</p>"
        + _html_table(["reference", metric], [[REFERENCE_KINDS[k], v] for k, v in f["values"].items()])
        for f in found)
    return (f"<h3>References ({html.escape(metric)}, validation)</h3>{tables}"
            f"<p class=note>{html.escape(NON_PRIVATE_NOTE[0].upper() + NON_PRIVATE_NOTE[1:])}.</p>")


def _image_html(png: Path, dataset: str) -> str:
    """The plot embedded as a data URI: index.html is one self-contained file."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="Pareto front of {html.escape(dataset)}">'


def _dataset_section(table: pa.Table, dataset: str, metric: str, png: Path,
                     references: pa.Table | None) -> str:
    front = pareto_front(table, dataset=dataset, metric=metric).to_pylist()
    headers = [label for label, _ in FRONT_COLUMNS]
    headers.insert(1, metric)
    front_rows = [[r["epsilon"], r[metric], *(r[c] for _, c in FRONT_COLUMNS[1:])] for r in front]
    cost = privacy_cost(table, dataset=dataset, metric=metric)
    cost_rows = [[c["epsilon"], c[metric], c["baseline"], c["cost"], c["trial_id"]] for c in cost]
    n_trials = int(np.sum(table["dataset"].to_numpy(zero_copy_only=False) == dataset))
    return (
        f"<section><h2>{html.escape(dataset)}</h2>"
        f"<p>{n_trials} trials, {len(front)} on the Pareto front ({html.escape(metric)}).</p>"
        + "".join(f"<p class=note>{html.escape(line)}</p>" for line in coverage_lines(table, dataset))
        + _image_html(png, dataset)
        + _references_html(references, table, dataset, metric) +
        f"<h3>Pareto front</h3>{_html_table(headers, front_rows)}"
        f"<h3>Privacy cost (against the best non-private trial)</h3>"
        f"{_html_table(['ε', metric, 'non-private', 'cost', 'trial_id'], cost_rows)}</section>"
    )


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
          "table{border-collapse:collapse;margin-bottom:1em}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}")


def write_report(store_or_table: ResultStore | pa.Table, out_dir: str | os.PathLike[str], *,
                 metric: str = "weighted_f1", references: pa.Table | None = None) -> list[Path]:
    """Write ``pareto_<dataset>.png`` per dataset and a self-contained ``index.html`` (plots
    embedded); return their paths. ``references``: the store's, read from it when it is given."""
    check_metric(metric)
    if isinstance(store_or_table, ResultStore):
        table = store_or_table.read()
        references = read_references(store_or_table) if references is None else references
    else:
        table = store_or_table
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, sections = [], []
    for dataset in sorted(pc.unique(table["dataset"]).to_pylist()):
        png = plot_pareto(table, dataset=dataset, metric=metric, path=out / f"pareto_{dataset}.png",
                          references=references)
        paths.append(png)
        sections.append(_dataset_section(table, dataset, metric, png, references))
    body = "".join(sections) or "<p>The results store holds no trials yet.</p>"
    index = out / "index.html"
    index.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>dpsweep results</title>'
        f"<style>{_STYLE}</style></head><body><h1>dpsweep results: {html.escape(_short_words(metric))} "
        f"against ε</h1>{body}</body></html>\n", encoding="utf-8")
    return [*paths, index]
