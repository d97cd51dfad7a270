"""The manifest: one Parquet row per spectrum file, written by synth, read by every job.

Column names are those of CONVENTIONS.md; the schema lives here once.
"""

from __future__ import annotations

import pyarrow as pa

#: Columns every manifest has (truth columns are null for real releases).
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("survey", pa.string(), nullable=False),
        pa.field("obsid", pa.int64()),
        pa.field("specobjid", pa.string()),
        pa.field("ra", pa.float64()),
        pa.field("dec", pa.float64()),
        pa.field("class", pa.string()),
        pa.field("subclass", pa.string()),
        pa.field("z", pa.float64()),
        pa.field("zwarning", pa.int64()),
        pa.field("snr_g", pa.float64()),
        pa.field("snr_r", pa.float64()),
        pa.field("snr_i", pa.float64()),
        pa.field("true_class", pa.string()),
        pa.field("true_subclass", pa.string()),
        pa.field("true_z", pa.float64()),
        pa.field("true_teff", pa.float64()),
        pa.field("true_logg", pa.float64()),
        pa.field("true_feh", pa.float64()),
        pa.field("layout", pa.string()),
        # 2D products of synthetic releases (``synth --with-2d / --with-photometry``):
        # absolute URIs of the spectrum's stripes and g, r, i cutout files, else null.
        pa.field("stripes_uri", pa.string()),
        pa.field("cutout_uri", pa.string()),
    ]
)
MANIFEST_COLUMNS: tuple[str, ...] = tuple(MANIFEST_SCHEMA.names)
TRUTH_COLUMNS: tuple[str, ...] = tuple(c for c in MANIFEST_COLUMNS if c.startswith("true_"))


def manifest_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts keyed by column name, missing keys null) as a manifest table."""
    columns = {name: [row.get(name) for row in rows] for name in MANIFEST_COLUMNS}
    return pa.Table.from_pydict(columns, schema=MANIFEST_SCHEMA)
