"""A plain-text summary of a release manifest: counts and S/N quantiles."""

from __future__ import annotations

from collections import Counter

import pyarrow.compute as pc
import pyarrow.parquet as pq

from raysurvey.labels import stellar8_label
from raysurvey.summary import format_table


def true_type(true_class: str | None, true_subclass: str | None) -> str:
    """The generator's kind from truth labels: a stellar8 class, WD, GALAXY or QSO."""
    if true_class != "STAR":
        return str(true_class)
    return stellar8_label("STAR", true_subclass) or str(true_subclass)


def _counts(table, column: str) -> list[tuple[str, str]]:
    counts = pc.value_counts(table[column]).to_pylist()
    rows = sorted(((str(c["values"]), c["counts"]) for c in counts), key=lambda r: -r[1])
    return [(name, str(count)) for name, count in rows]


def release_summary(manifest_uri: str) -> str:
    """Counts by survey, layout, true class and subclass type, and S/N_r quantiles."""
    table = pq.read_table(manifest_uri)
    lines = [f"{manifest_uri}: {table.num_rows} spectra", ""]
    for column in ("survey", "layout", "true_class", "class"):
        lines.append(format_table(_counts(table, column), (column, "count")))
        lines.append("")
    kinds = Counter(
        true_type(cls, sub)
        for cls, sub in zip(
            table["true_class"].to_pylist(), table["true_subclass"].to_pylist(), strict=True
        )
    )
    rows = [(kind, str(count)) for kind, count in kinds.most_common()]
    lines.append(format_table(rows, ("true type", "count")))
    products = [
        f"{label} {table.num_rows - table[column].null_count}"
        for column, label in (("stripes_uri", "2D stripes"), ("cutout_uri", "gri cutouts"))
        if column in table.column_names and table[column].null_count < table.num_rows
    ]
    if products:
        lines += ["", "products: " + ", ".join(products)]
    snr = table["snr_r"].to_numpy(zero_copy_only=False)
    quantiles = pc.quantile(table["snr_r"], q=[0.05, 0.25, 0.5, 0.75, 0.95]).to_pylist()
    lines.append("")
    lines.append(
        f"S/N_r per pixel: median {quantiles[2]:.1f}, 5-95% {quantiles[0]:.1f}-{quantiles[4]:.1f}, "
        f"min {snr.min():.1f}, max {snr.max():.1f}"
    )
    return "\n".join(lines)
