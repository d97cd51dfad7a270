"""Accuracy per S/N bin of several evaluated models side by side (DRC-Net's Figure 7).

DRC-Net's claim is robustness at low S/N: trained at S/N_r > 30, it keeps its accuracy
in the lower bins where a 1D model (RC-Net) falls off. ``compare_snr`` reads the
``metrics.json`` that ``jobs/evaluate.py`` wrote for each model (evaluated with the
same bins, e.g. ``--min-snr 0`` and the drcnet preset's bins) and writes one table
(Markdown and CSV, a row per bin, a column per model) and one grouped bar chart.
"""

from __future__ import annotations

import json
import math

import fsspec

from raysurvey.train.figures import save_png


class CompareError(ValueError):
    """Reports that cannot be put side by side (the message says which and why)."""


def _bin_name(lo: float, hi: float) -> str:
    if lo <= 0 and math.isfinite(hi):
        return f"< {hi:g}"
    if not math.isfinite(hi):
        return f"> {lo:g}"
    return f"{lo:g}-{hi:g}"


def read_report(uri: str) -> dict:
    """``metrics.json`` of an evaluation directory (or the file itself)."""
    path = uri if uri.endswith(".json") else uri.rstrip("/") + "/metrics.json"
    try:
        with fsspec.open(path, "r") as f:
            report = json.load(f)
    except FileNotFoundError:
        raise CompareError(f"{path}: no evaluation report (run jobs/evaluate.py first)") from None
    if "accuracy_by_snr" not in report:
        raise CompareError(f"{path}: not a classification report (no accuracy_by_snr)")
    return report


def compare_snr(reports: dict[str, str], out: str) -> list[dict]:
    """Side-by-side accuracy per S/N bin of ``{name: evaluation dir}``; returns the rows.

    Writes ``OUT/snr_comparison.md``, ``.csv`` and ``.png``. Every report must use the
    same bins and S/N column, or the comparison is refused.
    """
    if not reports:
        raise CompareError("no reports to compare")
    loaded = {name: read_report(uri) for name, uri in reports.items()}
    first_name, first = next(iter(loaded.items()))
    edges = [(r["snr_lo"], r["snr_hi"]) for r in first["accuracy_by_snr"]]
    column = first.get("snr_column", "snr_i")
    for name, report in loaded.items():
        other = [(r["snr_lo"], r["snr_hi"]) for r in report["accuracy_by_snr"]]
        if other != edges or report.get("snr_column", "snr_i") != column:
            raise CompareError(
                f"{name} was evaluated with other S/N bins or column than {first_name}: "
                f"{report.get('snr_column', 'snr_i')} {other} vs {column} {edges}"
            )
    rows = []
    for k, (lo, hi) in enumerate(edges):
        row = {"bin": _bin_name(lo, hi), "snr_lo": lo, "snr_hi": hi}
        for name, report in loaded.items():
            cell = report["accuracy_by_snr"][k]
            row[f"{name}_accuracy"] = cell["accuracy"]
            row[f"{name}_n"] = cell["n"]
        rows.append(row)
    overall = {"bin": "all", "snr_lo": None, "snr_hi": None}
    for name, report in loaded.items():
        overall[f"{name}_accuracy"] = report.get("accuracy")
        overall[f"{name}_n"] = report.get("n")
    rows.append(overall)
    _write(rows, list(loaded), column, out)
    return rows


def _percent(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _write(rows: list[dict], names: list[str], column: str, out: str) -> None:
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    header = f"| S/N ({column}) | " + " | ".join(f"{n} acc. (%) | n" for n in names) + " |\n"
    rule = "|---|" + "---:|---:|" * len(names) + "\n"
    lines = [header, rule]
    for row in rows:
        cells = [f"{_percent(row[f'{n}_accuracy'])} | {row[f'{n}_n']}" for n in names]
        lines.append(f"| {row['bin']} | " + " | ".join(cells) + " |\n")
    with fs.open(f"{path}/snr_comparison.md", "w") as f:
        f.writelines(lines)
    with fs.open(f"{path}/snr_comparison.csv", "w") as f:
        f.write("bin," + ",".join(f"{n}_accuracy,{n}_n" for n in names) + "\n")
        for row in rows:
            values = [f"{row[f'{n}_accuracy'] or ''},{row[f'{n}_n']}" for n in names]
            f.write(f"{row['bin']}," + ",".join(values) + "\n")
    _chart(rows[:-1], names, column, fs, f"{path}/snr_comparison.png")


def _chart(rows: list[dict], names: list[str], column: str, fs, uri: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(rows), 3.2))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs = [k + (j - (len(names) - 1) / 2) * width for k in range(len(rows))]
        ys = [row[f"{name}_accuracy"] or 0.0 for row in rows]
        ax.bar(xs, ys, width=width, label=name)
        for x, y, row in zip(xs, ys, rows, strict=True):
            ax.text(x, y, f"n={row[f'{name}_n']}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(rows)), [row["bin"] for row in rows])
    ax.set(xlabel=f"S/N ({column})", ylabel="accuracy", ylim=(0, 1.1))
    ax.legend(fontsize=8, loc="lower right")
    save_png(fig, fs, uri)
