"""Labelled sets of real survey files: find them and turn them into manifests.

A labelled real set is a folder of LAMOST / SDSS files with a ``MANIFEST.csv`` that
gives each file's pipeline labels (``path``, ``survey``, ``class``, ``subclass``, ``z``,
``snr``, ``quality_flag``; the layout of ``../shared/realdata``). Without the CSV the
labels come from the files' own headers (``raysurvey.ingest``). The labels are the
survey pipelines', not truth: results on them are "agreement with the survey
pipeline".
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pyarrow as pa

from raysurvey.ingest import INGEST_SCHEMA, build_manifest, manifest_row

ENV_VAR = "RAYSURVEY_REALDATA"
LABELS_FILE = "MANIFEST.csv"
#: Columns a real-set manifest carries beyond the manifest's: where the labels came
#: from (``program``: LAMOST, SDSS or BOSS as the set names it) and the set's flag.
EXTRA_FIELDS = (pa.field("program", pa.string()), pa.field("quality_flag", pa.string()))
REALSET_SCHEMA = pa.schema([*INGEST_SCHEMA, *EXTRA_FIELDS])


def find_realdata(explicit: str | os.PathLike | None = None) -> Path | None:
    """The labelled real set: ``explicit``, else ``$RAYSURVEY_REALDATA``, else
    ``../shared/realdata`` from the current directory; None when none exists."""
    for candidate in (explicit, os.environ.get(ENV_VAR), "../shared/realdata"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    if value is None or not math.isfinite(value) or value <= -999:
        return None
    return value


def realset_table(root: str | os.PathLike, *, headers: bool = True) -> pa.Table:
    """The manifest of a labelled real set, labels from its ``MANIFEST.csv``.

    With ``headers`` each file is also read for its ids, coordinates, S/N and layout
    (and its read error, if any); the CSV's labels win over the header's.
    """
    root = Path(root)
    labels = root / LABELS_FILE
    if not labels.exists():
        raise FileNotFoundError(f"{root}: no {LABELS_FILE} (use `raysurvey manifest` instead)")
    rows = []
    with labels.open(newline="") as handle:
        for record in csv.DictReader(handle):
            program = record["survey"].strip().upper()
            uri = str((root / record["path"]).resolve())
            row = dict.fromkeys(REALSET_SCHEMA.names)
            if headers:
                row.update(manifest_row(uri))
            row.update(
                uri=uri,
                survey="lamost" if program == "LAMOST" else "sdss",
                program=program,
                quality_flag=record.get("quality_flag") or None,
                subclass=record.get("subclass") or None,
                z=_number(record.get("z")),
                snr_r=_number(record.get("snr")) if row["snr_r"] is None else row["snr_r"],
            )
            row["class"] = (record.get("class") or "").strip().upper() or None
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=REALSET_SCHEMA)


def write_realset_manifest(root: str | os.PathLike, out: str) -> pa.Table:
    """Write a labelled real set's manifest to ``out`` (labels from the CSV if present,
    else from the files' headers) and return it."""
    import fsspec
    import pyarrow.parquet as pq

    root = Path(root)
    if (root / LABELS_FILE).exists():
        table = realset_table(root)
        with fsspec.open(out, "wb") as handle:
            pq.write_table(table, handle)
        return table
    build_manifest([str(root)], out)
    with fsspec.open(out, "rb") as handle:
        return pq.read_table(handle)
