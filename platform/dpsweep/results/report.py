"""A static report of a results store: per dataset a Pareto plot and tables, one index.html.

Why static files: they open anywhere (a laptop, a CI artifact, a shared drive) with no
server. Only numbers and config values are shown; no report text exists in the store.
matplotlib is optional (``pip install 'dpsweep[plot]'``) and imported only here.
"""

from __future__ import annotations

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
from dpsweep.results.queries import best_non_private, privacy_cost
from dpsweep.results.store import ResultStore

NON_PRIVATE_LABEL = "non-private (ε = ∞)"
FRONT_COLUMNS = (("ε", "epsilon"), ("σ", "sigma"), ("C", "clip"), ("q", "sample_rate"),
                 ("steps", "steps"), ("rank", "rank"), ("lr", "lr"), ("trial_id", "trial_id"))


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'dpsweep[plot]' "
                          "(or pip install matplotlib)") from exc
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def delta_label(rows: pa.Table) -> str:
    """The x-axis label: ``ε (δ = 1e-05)``, or the range of δ when trials differ."""
    deltas = rows.filter(pc.is_finite(rows["epsilon"]))["delta"].drop_null()
    values = sorted(set(deltas.to_pylist()))
    if not values:
        return "ε per trial"
    if len(values) == 1:
        return f"ε per trial (δ = {values[0]:.3g})"
    return f"ε per trial (δ = {values[0]:.3g} … {values[-1]:.3g})"


def plot_pareto(table: pa.Table, *, dataset: str, metric: str, path: str | os.PathLike[str]) -> Path:
    """Draw all completed trials, the front as a step line and the non-private baseline."""
    plt = _pyplot()
    rows = completed_rows(table, dataset=dataset, metric=metric)
    finite = rows.filter(pc.is_finite(rows["epsilon"]))
    front = pareto_front(table, dataset=dataset, metric=metric)
    front = front.filter(pc.is_finite(front["epsilon"]))
    baseline = best_non_private(table, dataset=dataset, metric=metric)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.scatter(finite["epsilon"].to_numpy(), finite[metric].to_numpy(), s=14, alpha=0.25,
               color="tab:blue", label=f"DP trials ({finite.num_rows})")
    if front.num_rows:
        eps, value = front["epsilon"].to_numpy(), front[metric].to_numpy()
        ax.step(eps, value, where="post", color="tab:red", marker="o", label="Pareto front")
    if baseline is not None:
        ax.axhline(baseline[metric], color="black", linestyle="--", linewidth=1.2,
                   label=f"{NON_PRIVATE_LABEL}: {baseline[metric]:.3f}")
    ax.set_xscale("log")
    if finite.num_rows == 0:
        ax.set_xlim(1e-2, 1e1)  # nothing private to place: a readable default range
    ax.set_xlabel(delta_label(rows))
    ax.set_ylabel(f"validation {metric.replace('_', ' ')}" + ("" if metric.endswith("_tuned") else ", threshold 0.5"))
    ax.set_title(f"{dataset}: {metric} against ε")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
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


def _dataset_section(table: pa.Table, dataset: str, metric: str, image: str) -> str:
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
        + "".join(f"<p class=note>{html.escape(line)}</p>" for line in coverage_lines(table, dataset)) +
        f'<img src="{html.escape(image)}" alt="Pareto front of {html.escape(dataset)}">'
        f"<h3>Pareto front</h3>{_html_table(headers, front_rows)}"
        f"<h3>Privacy cost (against the best non-private trial)</h3>"
        f"{_html_table(['ε', metric, 'non-private', 'cost', 'trial_id'], cost_rows)}</section>"
    )


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
          "table{border-collapse:collapse;margin-bottom:1em}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}")


def write_report(store_or_table: ResultStore | pa.Table, out_dir: str | os.PathLike[str], *,
                 metric: str = "weighted_f1") -> list[Path]:
    """Write ``pareto_<dataset>.png`` per dataset and ``index.html``; return their paths."""
    check_metric(metric)
    table = store_or_table.read() if isinstance(store_or_table, ResultStore) else store_or_table
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, sections = [], []
    for dataset in sorted(pc.unique(table["dataset"]).to_pylist()):
        image = f"pareto_{dataset}.png"
        paths.append(plot_pareto(table, dataset=dataset, metric=metric, path=out / image))
        sections.append(_dataset_section(table, dataset, metric, image))
    body = "".join(sections) or "<p>The results store holds no trials yet.</p>"
    index = out / "index.html"
    index.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>dpsweep results</title>'
        f"<style>{_STYLE}</style></head><body><h1>dpsweep results: {html.escape(metric)} against ε</h1>"
        f"{body}</body></html>\n", encoding="utf-8")
    return [*paths, index]
