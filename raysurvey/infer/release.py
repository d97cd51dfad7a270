"""What ``--release`` names: a manifest Parquet, or a directory / s3:// prefix of FITS files.

A manifest carries ids, coordinates and pipeline labels; a bare listing carries only
URIs, so the decode stage fills those columns from each file's header. Either way the
release is a table with the manifest's columns in a fixed row order (the manifest's
own order, or the sorted listing), which the catalog's chunks are cut from.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from raysurvey.ingest import FITS_SUFFIXES, list_fits_files
from raysurvey.manifest import MANIFEST_SCHEMA

#: Manifest columns the catalog needs.
RELEASE_COLUMNS = (
    "uri",
    "survey",
    "obsid",
    "specobjid",
    "ra",
    "dec",
    "class",
    "subclass",
    "z",
    "zwarning",
    "snr_r",
)
#: Carried when a manifest has them: the files of its 2D products (not catalog columns).
PRODUCT_COLUMNS = ("stripes_uri", "cutout_uri")
#: Header keys that fill a listed release's columns (``Spectrum.meta`` names).
HEADER_KEYS = tuple(c for c in RELEASE_COLUMNS if c != "uri")


class ReleaseError(ValueError):
    """A ``--release`` that names nothing usable (the message says what was found)."""


@dataclass(frozen=True)
class Release:
    """The rows to classify, in catalog order, and whether headers must fill them in."""

    uri: str
    table: pa.Table
    listed: bool

    @property
    def uris(self) -> list[str]:
        return self.table.column("uri").to_pylist()


def read_release(uri: str) -> Release:
    """The release at ``uri``: a ``.parquet`` manifest, or the FITS files under a prefix."""
    fs, path = fsspec.core.url_to_fs(uri)
    if path.endswith(".parquet"):
        if not fs.exists(path):
            raise ReleaseError(f"{uri}: manifest not found")
        with fs.open(path, "rb") as f:
            table = pq.read_table(f)
        missing = [c for c in ("uri", "survey") if c not in table.column_names]
        if missing:
            raise ReleaseError(f"{uri}: not a manifest (no column {', '.join(missing)})")
        columns = []
        for name in RELEASE_COLUMNS:
            field = MANIFEST_SCHEMA.field(name)
            if name in table.column_names:
                columns.append(table.column(name).cast(field.type))
            else:
                columns.append(pa.nulls(table.num_rows, field.type))
        names = list(RELEASE_COLUMNS)
        for name in PRODUCT_COLUMNS:  # 2D files, for stripes / photometry bundles
            if name in table.column_names:
                columns.append(table.column(name).cast(pa.string()))
                names.append(name)
        table = pa.table(columns, names=names)
        return Release(uri=uri, table=table, listed=False)
    if not fs.isdir(path):
        raise ReleaseError(f"{uri}: neither a manifest (.parquet) nor a directory / prefix")
    files = list_fits_files(uri)
    if not files:
        raise ReleaseError(f"{uri}: no FITS files ({', '.join(FITS_SUFFIXES)}) under it")
    n = len(files)
    columns = [pa.array(files, pa.string())]
    columns += [pa.nulls(n, MANIFEST_SCHEMA.field(c).type) for c in RELEASE_COLUMNS[1:]]
    return Release(uri=uri, table=pa.table(columns, names=list(RELEASE_COLUMNS)), listed=True)
