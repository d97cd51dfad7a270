"""Query a catalog with DuckDB (local or s3://), summarise it, draw its sky map.

Only committed chunks are visible (``CatalogStore.committed_files``): a catalog being
written, or one whose run was killed, is read consistently. A HATS publication
(``raysurvey publish-hats``) is read through its main catalog's partition files. The table is named
``catalog``. DuckDB cannot install its httpfs extension offline, so s3:// files are
read through fsspec (``register_filesystem``), with the same credentials and endpoint
as every other s3:// access here.
"""

from __future__ import annotations

import fsspec

from raysurvey.hats_publish import is_hats
from raysurvey.infer.store import CatalogStore


class EmptyCatalogError(RuntimeError):
    """A catalog URI with no committed chunk (nothing to query yet)."""


def connect(catalog_uri: str):
    """A DuckDB connection with a ``catalog`` view over the committed chunk files."""
    import duckdb

    store = CatalogStore(catalog_uri)
    files = store.committed_files()
    if not files and is_hats(catalog_uri):  # a HATS publication: its main catalog's files
        from raysurvey.hats_publish import hats_partition_files

        files = hats_partition_files(catalog_uri)
    if not files:
        raise EmptyCatalogError(f"{catalog_uri}: no committed catalog chunks")
    con = duckdb.connect()
    protocol = store.fs.protocol[0] if isinstance(store.fs.protocol, tuple) else store.fs.protocol
    if protocol not in ("file", "local"):
        con.register_filesystem(fsspec.filesystem(protocol))
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(  # no hive partitioning: HATS paths' Norder=/Dir= are not columns
        f"CREATE VIEW catalog AS SELECT * FROM read_parquet([{listing}], hive_partitioning = false)"
    )
    return con


def query(catalog_uri: str, sql: str):
    """Run ``sql`` against ``catalog``; returns (column names, rows)."""
    con = connect(catalog_uri)
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return names, cursor.fetchall()
    finally:
        con.close()


def format_rows(names: list[str], rows: list[tuple], limit: int = 200) -> str:
    """A plain-text table (at most ``limit`` rows shown)."""

    def cell(value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    shown = [[cell(v) for v in row] for row in rows[:limit]]
    widths = [max([len(n), *(len(r[i]) for r in shown)]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in shown]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows")
    return "\n".join(lines)


SUMMARY_QUERIES = {
    "by status": "SELECT status, count(*) AS n FROM catalog GROUP BY 1 ORDER BY 2 DESC",
    "by survey": "SELECT survey, count(*) AS n FROM catalog GROUP BY 1 ORDER BY 2 DESC",
    "by predicted class": (
        "SELECT pred_class, count(*) AS n, round(avg(confidence), 3) AS mean_confidence "
        "FROM catalog WHERE status = 'ok' GROUP BY 1 ORDER BY 2 DESC"
    ),
    "errors by reason": (
        "SELECT split_part(error, ':', 1) AS reason, count(*) AS n FROM catalog "
        "WHERE status = 'error' GROUP BY 1 ORDER BY 2 DESC"
    ),
}


def catalog_summary(catalog_uri: str, skymap: str | None = None) -> str:
    """Counts by status, survey and class (text); optionally a sky-map PNG."""
    con = connect(catalog_uri)
    try:
        parts = []
        for title, sql in SUMMARY_QUERIES.items():
            cursor = con.execute(sql)
            rows = cursor.fetchall()
            if rows:
                names = [d[0] for d in cursor.description]
                parts.append(f"{title}:\n{format_rows(names, rows)}")
        if skymap:
            points = con.execute(
                "SELECT ra, dec, pred_class FROM catalog "
                "WHERE status = 'ok' AND ra IS NOT NULL AND dec IS NOT NULL"
            ).fetchall()
            plot_skymap(points, skymap)
            parts.append(f"sky map of {len(points):,} classified objects: {skymap}")
        return "\n\n".join(parts)
    finally:
        con.close()


def plot_skymap(points: list[tuple], out: str) -> None:
    """Mollweide map (RA increasing to the left, as on the sky) coloured by class."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig = plt.figure(figsize=(9, 5))
    ax = fig.add_subplot(111, projection="mollweide")
    if points:
        ra = np.array([p[0] for p in points], dtype=float)
        dec = np.array([p[1] for p in points], dtype=float)
        cls = np.array([p[2] for p in points], dtype=object)
        x = -np.radians(np.where(ra > 180, ra - 360, ra))
        for label in sorted(set(cls)):
            sel = cls == label
            ax.scatter(x[sel], np.radians(dec[sel]), s=2, label=f"{label} ({sel.sum():,})")
        ax.legend(loc="lower right", fontsize=7, markerscale=4)
    ax.set_xticks(np.radians([150, 120, 90, 60, 30, 0, -30, -60, -90, -120, -150]))
    ax.set_xticklabels(["210", "240", "270", "300", "330", "0", "30", "60", "90", "120", "150"])
    ax.grid(True, alpha=0.3)
    ax.set_title(f"classified objects (RA, Dec), {len(points):,}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with fsspec.open(out, "wb") as f:
        f.write(buf.getvalue())
