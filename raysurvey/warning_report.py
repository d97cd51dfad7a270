"""``raysurvey warning-report``: does ``warning`` catch the model's own errors?

Joins a catalog to a labelled manifest (a real set's pipeline labels, or a synthetic
release's) by URI and counts, among readable rows with a class3 label, the rows whose
``pred_class`` disagrees with the label ("errors") and those that agree ("correct"):
for each warning bit, for ``warning != 0``, and for the plain cut ``confidence < t``,
how many errors it catches and how many correct rows it flags. On real files the
labels are the survey pipeline's, so "error" means "disagrees with the pipeline".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from raysurvey.labels import class3_label
from raysurvey.warning_bits import BITS

CONFIDENCE_CUTS = (0.5, 0.7, 0.9, 0.99)
COLUMNS = ("uri", "status", "pred_class", "confidence", "ood_score", "warning")


@dataclass
class WarningReport:
    """Rows: (name, errors caught, correct rows flagged); n errors / n correct."""

    rows: list[tuple[str, int, int]]
    n_errors: int
    n_correct: int
    n_bad_read: int
    n_unlabelled: int

    def fraction(self, name: str) -> tuple[float, float]:
        """(share of errors caught, share of correct rows flagged) of one row."""
        for row_name, caught, flagged in self.rows:
            if row_name == name:
                return caught / max(self.n_errors, 1), flagged / max(self.n_correct, 1)
        raise KeyError(name)

    def markdown(self) -> str:
        lines = [
            f"| flag | errors caught (of {self.n_errors}) | correct rows flagged "
            f"(of {self.n_correct}) |",
            "|---|---:|---:|",
        ]
        for name, caught, flagged in self.rows:
            lines.append(
                f"| {name} | {caught} ({100 * caught / max(self.n_errors, 1):.1f} %) | "
                f"{flagged} ({100 * flagged / max(self.n_correct, 1):.1f} %) |"
            )
        lines.append(
            f"\n{self.n_bad_read} unreadable rows (all BAD_READ, not counted above); "
            f"{self.n_unlabelled} rows without a class3 label left out."
        )
        return "\n".join(lines)


def labels_table(source: str) -> pa.Table:
    """Labels from a manifest Parquet, or a labelled real set's folder (MANIFEST.csv)."""
    import fsspec
    import pyarrow.parquet as pq

    if Path(source).is_dir():
        from raysurvey.realdata import realset_table

        return realset_table(source, headers=False)
    with fsspec.open(source, "rb") as f:
        return pq.read_table(f, columns=["uri", "class"])


def warning_report(catalog: pa.Table, labels: pa.Table) -> WarningReport:
    """The report for ``catalog`` rows (at least COLUMNS) against ``labels`` (uri, class)."""
    truth_of = dict(
        zip(labels.column("uri").to_pylist(), labels.column("class").to_pylist(), strict=True)
    )
    rows = catalog.to_pylist()
    bad_read = sum(r["status"] != "ok" for r in rows)
    kept = [(r, class3_label(truth_of.get(r["uri"]))) for r in rows if r["status"] == "ok"]
    unlabelled = sum(t is None for _, t in kept)
    kept = [(r, t) for r, t in kept if t is not None]
    wrong = np.array([r["pred_class"] != t for r, t in kept], dtype=bool)
    warning = np.array([int(r["warning"] or 0) for r, _ in kept], dtype=np.int64)
    conf = np.array(
        [np.nan if r["confidence"] is None else r["confidence"] for r, _ in kept], dtype=float
    )
    out = []

    def add(name: str, flagged: np.ndarray) -> None:
        out.append((name, int((flagged & wrong).sum()), int((flagged & ~wrong).sum())))

    for name, bit in BITS.items():
        add(name, (warning & bit) != 0)
    add("warning != 0", warning != 0)
    for t in CONFIDENCE_CUTS:
        with np.errstate(invalid="ignore"):
            add(f"confidence < {t:g}", conf < t)
    return WarningReport(
        rows=out,
        n_errors=int(wrong.sum()),
        n_correct=int((~wrong).sum()),
        n_bad_read=bad_read,
        n_unlabelled=unlabelled,
    )


def read_catalog_rows(catalog_uri: str) -> pa.Table:
    """The report's columns of a committed catalog."""
    from raysurvey.infer.query import query

    names, rows = query(catalog_uri, f"SELECT {', '.join(COLUMNS)} FROM catalog")
    return pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])
