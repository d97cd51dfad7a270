"""A sweep's results as the papers' tables: mean +- std per choice over its finished
trials (``results/TRIAL.json``), as CSV and Markdown, a bar chart with error bars, and
the best choice's model (chosen on validation accuracy, never on the test split)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from typing import Protocol

import fsspec
import numpy as np

from raysurvey.train.figures import save_png

#: The fields of a finished trial's ``results/TRIAL.json``, in ``trials.csv`` order.
RESULT_FIELDS = (
    "trial",
    "choice",
    "seed",
    "lr",
    "weight_decay",
    "best_epoch",
    "epochs_run",
    "val_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "n_test",
    "wall_s",
)


class SweepLike(Protocol):
    """What the tables read of a sweep (``sweep.SweepSpec``, which imports this module)."""

    name: str
    paper_source: str
    choices: Sequence  # of sweep.Choice: .name, .paper

    @property
    def root(self) -> str: ...


def read_results(sweep: SweepLike) -> list[dict]:
    fs, path = fsspec.core.url_to_fs(f"{sweep.root}/results")
    if not fs.exists(path):
        return []
    out = []
    for entry in sorted(fs.ls(path, detail=False)):
        if entry.endswith(".json"):
            with fs.open(entry) as f:
                out.append(json.load(f))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; NaN for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), std


def aggregate(sweep: SweepLike, results: Sequence[dict]) -> list[dict]:
    """One row per choice (in the sweep's order): mean +- std over its finished trials."""
    rows = []
    for choice in sweep.choices:
        mine = [r for r in results if r["choice"] == choice.name]
        acc, acc_std = mean_std([r["test_accuracy"] for r in mine])
        f1, f1_std = mean_std([r["test_macro_f1"] for r in mine])
        val, _ = mean_std([r["val_accuracy"] for r in mine])
        rows.append(
            {
                "choice": choice.name,
                "trials": len(mine),
                "test_accuracy_mean": acc,
                "test_accuracy_std": acc_std,
                "test_macro_f1_mean": f1,
                "test_macro_f1_std": f1_std,
                "val_accuracy_mean": val,
                "paper": choice.paper or "",
            }
        )
    return rows


def _pct(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.2f}" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")


def write_tables(sweep: SweepLike) -> dict:
    """table.csv, table.md, chart.png and best_bundle/ from the finished trials."""
    results = read_results(sweep)
    rows = aggregate(sweep, results)
    fs, root = fsspec.core.url_to_fs(sweep.root)
    columns = list(rows[0]) if rows else []
    with fs.open(f"{root}/table.csv", "w") as f:
        f.write(",".join(columns) + "\n")
        for row in rows:
            f.write(",".join(_csv(row[c]) for c in columns) + "\n")
    with fs.open(f"{root}/trials.csv", "w") as f:
        f.write(",".join(RESULT_FIELDS) + "\n")
        for r in sorted(results, key=lambda r: r["trial"]):
            f.write(",".join(_csv(r.get(c)) for c in RESULT_FIELDS) + "\n")
    paper = f" | paper ({sweep.paper_source})" if sweep.paper_source else ""
    lines = [
        f"| {sweep.name} | trials | test accuracy (%) | test macro-F1 (%){paper} |",
        "|---|---:|---:|---:|" + ("---:|" if paper else ""),
    ]
    for row in rows:
        cells = [
            row["choice"],
            str(row["trials"]),
            _pct(row["test_accuracy_mean"], row["test_accuracy_std"]),
            _pct(row["test_macro_f1_mean"], row["test_macro_f1_std"]),
        ] + ([row["paper"] or "-"] if paper else [])
        lines.append("| " + " | ".join(cells) + " |")
    with fs.open(f"{root}/table.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    _chart(rows, sweep, fs, f"{root}/chart.png")
    best = _export_best(sweep, rows, results)
    return {"table": f"{sweep.root}/table.md", "choices": rows, "trials": len(results),
            "best": best}  # fmt: skip


def _csv(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    return f'"{text}"' if "," in text else text


def _export_best(sweep: SweepLike, rows: list[dict], results: list[dict]) -> dict | None:
    """The best choice by mean validation accuracy (the test split never picks), and
    its best-validated trial's bundle copied to ``best_bundle/``."""
    scored = [r for r in rows if r["trials"]]
    if not scored:
        return None
    choice = max(scored, key=lambda r: r["val_accuracy_mean"])["choice"]
    trial = max((r for r in results if r["choice"] == choice), key=lambda r: r["val_accuracy"])
    fs, src = fsspec.core.url_to_fs(trial["bundle"])
    _, dst = fsspec.core.url_to_fs(f"{sweep.root}/best_bundle")
    if fs.exists(dst):
        fs.rm(dst, recursive=True)
    fs.makedirs(dst, exist_ok=True)
    for entry in fs.ls(src, detail=False):
        fs.copy(entry, f"{dst}/{entry.rsplit('/', 1)[-1]}", recursive=True)
    return {"choice": choice, "trial": trial["trial"], "bundle": f"{sweep.root}/best_bundle"}


def _chart(rows: list[dict], sweep: SweepLike, fs, uri: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["choice"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(rows), 3.6))
    for offset, key, label in ((-0.2, "test_accuracy", "accuracy"),
                               (0.2, "test_macro_f1", "macro-F1")):  # fmt: skip
        mean = np.array([100 * r[f"{key}_mean"] for r in rows])
        std = np.nan_to_num(np.array([100 * r[f"{key}_std"] for r in rows]))
        ax.bar(x + offset, mean, 0.4, yerr=std, capsize=3, label=label)
    papers = [(k, float(r["paper"].split("±")[0])) for k, r in enumerate(rows) if r["paper"]]
    if papers:
        ax.plot([k for k, _ in papers], [v for _, v in papers], "k_", markersize=18,
                markeredgewidth=2, label=f"paper ({sweep.paper_source})")  # fmt: skip
    finite = [100 * r["test_accuracy_mean"] for r in rows if r["trials"]]
    low = min(finite + [v for _, v in papers], default=0.0)
    ax.set(xticks=x, ylabel="test (%)", ylim=(max(0.0, low - 10), 100),
           title=f"{sweep.name}: mean ± std over seeds")  # fmt: skip
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.legend(fontsize=7, loc="lower right")
    save_png(fig, fs, uri)
