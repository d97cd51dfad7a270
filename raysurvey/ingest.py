"""Manifests from real survey files: ``raysurvey manifest SOURCE --out manifest.parquet``.

A directory, s3:// prefix or list of FITS files becomes a manifest with the survey
pipelines' labels read from each file (same schema as a synthetic release's manifest,
truth columns null). A file that cannot be read is kept, with its reason in the
``read_error`` column (and ``survey`` = ``"unknown"`` when even the survey is unknown),
so a catalog made from the manifest still has one row per file. Small sets are read in
this process; large ones (``--ray``, or more than ``RAY_THRESHOLD`` files) as Ray tasks,
written in listing order.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from raysurvey.io import SpectrumReadError, read_spectrum
from raysurvey.manifest import MANIFEST_COLUMNS, MANIFEST_SCHEMA

FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz", ".fts")
#: Extra manifest column of ingested real files: "<reason>: <message>", null when read.
READ_ERROR_COLUMN = "read_error"
INGEST_SCHEMA = MANIFEST_SCHEMA.append(pa.field(READ_ERROR_COLUMN, pa.string()))
#: Above this many files the default is to read them with Ray tasks.
RAY_THRESHOLD = 20_000
#: Survey label of a file whose survey could not be read.
UNKNOWN_SURVEY = "unknown"


def _absolute(protocol: str | tuple, path: str) -> str:
    proto = protocol[0] if isinstance(protocol, tuple) else protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def list_fits_files(uri: str) -> list[str]:
    """Sorted absolute URIs of the FITS files under a directory or object-store prefix."""
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.isdir(path):
        raise FileNotFoundError(f"{uri}: not a directory or prefix")
    return sorted(
        _absolute(fs.protocol, p) for p in fs.find(path) if p.lower().endswith(FITS_SUFFIXES)
    )


def expand_sources(sources: Iterable[str]) -> list[str]:
    """Directories and prefixes expanded to their FITS files; files kept as given, in order."""
    uris: list[str] = []
    for source in sources:
        fs, path = fsspec.core.url_to_fs(source)
        if fs.isdir(path):
            uris.extend(list_fits_files(source))
        else:
            uris.append(source if "://" in source else _absolute(fs.protocol, path))
    return uris


def manifest_row(uri: str) -> dict:
    """One manifest row from a file's own header and records (never raises)."""
    row: dict = dict.fromkeys(INGEST_SCHEMA.names)
    row["uri"] = uri
    try:
        spectrum = read_spectrum(uri)
    except SpectrumReadError as error:
        row["survey"] = UNKNOWN_SURVEY
        row[READ_ERROR_COLUMN] = f"{error.code}: {error.message}"
        return row
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the listing
        row["survey"] = UNKNOWN_SURVEY
        row[READ_ERROR_COLUMN] = f"internal_error: {type(error).__name__}: {error}"
        return row
    for key in MANIFEST_COLUMNS:
        if key != "uri" and key in spectrum.meta and not key.startswith("true_"):
            row[key] = spectrum.meta[key]
    row["survey"] = spectrum.meta.get("survey") or UNKNOWN_SURVEY
    return row


def manifest_batch(uris: list[str]) -> pa.Table:
    """Rows for a batch of files, as a table of ``INGEST_SCHEMA``."""
    rows = [manifest_row(u) for u in uris]
    return pa.Table.from_pylist(rows, schema=INGEST_SCHEMA)


def _local_batches(uris: list[str], batch: int) -> Iterator[pa.Table]:
    for start in range(0, len(uris), batch):
        yield manifest_batch(uris[start : start + batch])


def _ray_batches(uris: list[str], batch: int) -> Iterator[pa.Table]:
    """The same batches as Ray tasks, a bounded number in flight, yielded in order."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    remote = ray.remote(num_cpus=1)(manifest_batch)
    window = max(2, int(ray.cluster_resources().get("CPU", 2)) * 2)
    pending: list = []
    for start in range(0, len(uris), batch):
        pending.append(remote.remote(uris[start : start + batch]))
        if len(pending) >= window:
            yield ray.get(pending.pop(0))
    for ref in pending:
        yield ray.get(ref)


def build_manifest(
    sources: Iterable[str],
    out: str,
    *,
    use_ray: bool | None = None,
    batch: int = 256,
    progress: Callable[[str], None] | None = None,
) -> Counter:
    """Write the manifest of ``sources`` to ``out``; return counts by survey/class/error.

    ``progress`` receives one line every few seconds (done/total, rate).
    """
    uris = expand_sources(sources)
    if not uris:
        raise FileNotFoundError(f"no FITS files ({', '.join(FITS_SUFFIXES)}) in {list(sources)}")
    if use_ray is None:
        use_ray = len(uris) > RAY_THRESHOLD
    batches = _ray_batches(uris, batch) if use_ray else _local_batches(uris, batch)
    counts: Counter = Counter()
    fs, path = fsspec.core.url_to_fs(out)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    began = last = time.perf_counter()
    done = 0
    with fs.open(path, "wb") as handle, pq.ParquetWriter(handle, INGEST_SCHEMA) as writer:
        for table in batches:
            writer.write_table(table)
            done += table.num_rows
            for survey, cls, err in zip(
                table.column("survey").to_pylist(),
                table.column("class").to_pylist(),
                table.column(READ_ERROR_COLUMN).to_pylist(),
                strict=True,
            ):
                counts[(survey, "error" if err else (cls or "null"))] += 1
                if err:
                    counts[("reason", err.split(":", 1)[0])] += 1
            now = time.perf_counter()
            if progress and (now - last > 2 or done == len(uris)):
                rate = done / max(now - began, 1e-9)
                eta = (len(uris) - done) / rate if rate else float("inf")
                progress(f"manifest: {done:,}/{len(uris):,} files, {rate:.0f}/s, ETA {eta:.0f} s")
                last = now
    return counts


def format_counts(counts: Counter) -> str:
    """The summary ``raysurvey manifest`` prints: files per survey and class, errors."""
    lines = []
    for (survey, label), n in sorted(counts.items()):
        if survey != "reason":
            lines.append(f"  {survey:8s} {label:8s} {n:7,d}")
    reasons = {label: n for (s, label), n in counts.items() if s == "reason"}
    if reasons:
        lines.append("  unreadable: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    return "\n".join(lines)


def main_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
