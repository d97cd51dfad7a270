"""Publish a raysurvey catalog as HATS (HEALPix-partitioned Parquet) for LSDB.

``publish_hats(catalog, output)`` reads only the committed chunks of a catalog
(``CatalogStore.committed_files``) and writes, with the hats-import pipeline on a Dask
client, a HATS *collection* at ``output``::

    OUTPUT/collection.properties          names the main catalog and its default margin
    OUTPUT/<name>/                        the main catalog: hats.properties,
                                          partition_info.csv, dataset/Norder=k/Dir=d/Npix=n.parquet
    OUTPUT/<name>_<margin>/               its margin cache (with ``margin_arcsec`` > 0)
    OUTPUT/_no_coordinates.parquet        rows without usable (ra, dec), all columns (maybe 0 rows)
    OUTPUT/raysurvey_catalog.json         provenance: source catalog, its plan and metadata, counts

This module imports nothing of ``raysurvey.infer`` at import time (only inside the
driver's functions), so Dask worker processes that unpickle its reader stay light.

``<name>`` is the last path component of ``output``. ``lsdb.read_hats(OUTPUT)`` opens
the catalog with its margin; ``raysurvey query OUTPUT "SQL"`` reads the main catalog.

Every column of the flat catalog is carried through unchanged (whatever columns the
catalog has; chunks written by different code versions are unified, a column missing
from a chunk is null there), and the catalog's key-value metadata (``raysurvey.catalog``:
bundles, grid, code version) stays on every partition file's schema. A few of its fields
are also HATS properties (``raysurvey_*`` keys of ``hats.properties``).

A row is placed by ``_healpix_29``, recomputed here from (ra, dec) with hats' own pixel
math (identical to the flat catalog's astropy-healpix value; recomputing keeps the
partitioning right for any input). Rows whose ra or dec is null, not finite, or with
|dec| > 90 cannot be placed: they go to ``_no_coordinates.parquet`` and are counted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NO_COORDINATES = "_no_coordinates.parquet"
PROVENANCE = "raysurvey_catalog.json"
COLLECTION_PROPERTIES = "collection.properties"
CATALOG_PROPERTIES = "hats.properties"
METADATA_KEY = b"raysurvey.catalog"
HEALPIX_COLUMN = "_healpix_29"
HEALPIX_ORDER = 29


class PublishError(RuntimeError):
    """A catalog or output that cannot be published as asked (the message says why)."""


@dataclass(frozen=True)
class PublishConfig:
    """How to partition and where to run.

    Attributes
    ----------
    margin_arcsec : float
        Margin cache width in arcseconds; 0 writes no margin cache.
    pixel_threshold : int
        Most rows in one partition (hats-import splits a pixel above it).
    highest_order : int
        Deepest HEALPix order a partition may have.
    workers, threads_per_worker : int
        The local Dask cluster; one worker runs in this process (threads, no
        start-up cost), more are processes.
    dask_address : str or None
        An existing Dask scheduler (``tcp://HOST:8786``) instead of a local cluster.
    overwrite : bool
        Replace an earlier publication at the output (never a directory that is not one).
    tmp_dir : str or None
        Local scratch for hats-import's intermediate files (default: a temporary
        directory, removed at the end). Must be a local path, also for s3:// outputs.
    chunk_rows : int
        Rows per read batch of a catalog file.
    """

    margin_arcsec: float = 10.0
    pixel_threshold: int = 1_000_000
    highest_order: int = 10
    workers: int = 1
    threads_per_worker: int = 1
    dask_address: str | None = None
    overwrite: bool = False
    tmp_dir: str | None = None
    chunk_rows: int = 200_000


@dataclass
class PublishResult:
    """What a publication wrote, with its counts."""

    output: str
    catalog_path: str
    margin_path: str | None
    committed_files: int
    rows_in: int
    rows_published: int
    rows_no_coordinates: int
    partitions: int
    margin_rows: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"publish-hats: {self.rows_in:,} rows from {self.committed_files} committed "
            f"files -> {self.output}",
            f"  published {self.rows_published:,} rows in {self.partitions} partitions "
            f"({self.catalog_path})",
            f"  without coordinates: {self.rows_no_coordinates:,} rows "
            f"({posixpath.join(self.output, NO_COORDINATES)})",
        ]
        if self.margin_path:
            out.append(f"  margin cache: {self.margin_rows:,} rows ({self.margin_path})")
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items())
        out.append(f"  {self.seconds:.1f} s ({timing})")
        return out


# -- rows and their coordinates ------------------------------------------------------------


def coordinates_mask(table: pa.Table) -> np.ndarray:
    """True where (ra, dec) can be placed on the sky: both finite and |dec| <= 90."""
    ra = table.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
    dec = table.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)


def _with_spatial_index(table: pa.Table) -> pa.Table:
    """``table`` with ``_healpix_29`` recomputed from (ra, dec) by hats (same position)."""
    from hats.pixel_math import compute_spatial_index

    ra = table.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
    dec = table.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
    values = pa.array(compute_spatial_index(ra, dec), type=pa.int64())
    if HEALPIX_COLUMN in table.column_names:
        position = table.column_names.index(HEALPIX_COLUMN)
        return table.set_column(position, HEALPIX_COLUMN, values)
    return table.append_column(HEALPIX_COLUMN, values)


class CatalogChunkReader:
    """hats-import input reader for raysurvey catalog files.

    Yields Arrow tables of the rows with coordinates only, with ``_healpix_29``
    recomputed, so that hats-import can place rows by it (``use_healpix_29``).
    A plain class registered as a hats-import ``InputReader`` (see ``_reader``), so this
    module imports without hats-import installed.
    """

    def __init__(self, chunk_rows: int = 200_000):
        self.chunk_rows = chunk_rows

    def read(self, input_file, read_columns=None):
        from hats.io import file_io

        parquet = file_io.read_parquet_file(input_file)
        columns = None
        if read_columns:
            wanted = [c for c in read_columns if c != HEALPIX_COLUMN]
            columns = list(dict.fromkeys([*wanted, "ra", "dec"]))
        for batch in parquet.iter_batches(batch_size=self.chunk_rows, columns=columns):
            table = pa.Table.from_batches([batch])
            table = _with_spatial_index(table.filter(coordinates_mask(table)))
            if read_columns:
                table = table.select(list(read_columns))
            yield table.replace_schema_metadata()


def _reader(chunk_rows: int):
    """A ``CatalogChunkReader`` that is also a hats-import ``InputReader``."""
    from hats_import.catalog.file_readers.input_reader import InputReader

    InputReader.register(CatalogChunkReader)
    return CatalogChunkReader(chunk_rows)


#: Order of the coarse sky histogram the scan returns (picks the mapping order).
SCAN_ORDER = 10


def scan_file(uri: str) -> tuple[int, pa.Schema, pa.Table, dict[int, int]]:
    """(rows, schema, the rows without coordinates, {order-10 pixel: rows}) of one file.

    Reads only ra and dec, and the whole file only when some row lacks coordinates.
    """
    from hats.pixel_math.healpix_shim import radec2pix

    with fsspec.open(uri, "rb") as f:
        parquet = pq.ParquetFile(f)
        schema = parquet.schema_arrow
        rows = parquet.metadata.num_rows
        if not {"ra", "dec"} <= set(schema.names):  # unify() says what is missing
            return rows, schema, schema.empty_table(), {}
        positions = parquet.read(columns=["ra", "dec"])
        good = coordinates_mask(positions)
        placed = positions.filter(good)
        pixels, counts = np.unique(
            radec2pix(
                SCAN_ORDER,
                placed.column("ra").to_numpy().astype(np.float64),
                placed.column("dec").to_numpy().astype(np.float64),
            ),
            return_counts=True,
        )
        histogram = dict(zip(pixels.tolist(), counts.tolist(), strict=True))
        bad = np.flatnonzero(~good)
        if not len(bad):
            return rows, schema, schema.empty_table(), histogram
        return rows, schema, parquet.read().take(pa.array(bad)), histogram


def mapping_order(histograms: list[dict[int, int]], threshold: int, highest: int) -> int:
    """The shallowest order at which no pixel holds more than ``threshold`` rows.

    No partition needs to be deeper, and hats-import's mapping histogram is dense
    (12.6 M bins at order 10): mapping at this order instead of ``highest`` saves
    most of its time and memory. ``highest`` when even order 10 is too crowded.
    """
    total: dict[int, int] = {}
    for histogram in histograms:
        for pixel, count in histogram.items():
            total[pixel] = total.get(pixel, 0) + count
    if not total:
        return 0
    pixels = np.fromiter(total.keys(), dtype=np.int64)
    counts = np.fromiter(total.values(), dtype=np.int64)
    for order in range(0, min(highest, SCAN_ORDER) + 1):
        coarse = pixels >> (2 * (SCAN_ORDER - order))
        _, inverse = np.unique(coarse, return_inverse=True)
        if np.bincount(inverse, weights=counts).max() <= threshold:
            return order
    return highest


def unify(schemas: list[pa.Schema], files: list[str]) -> pa.Schema:
    """One schema for all chunks (columns missing from a chunk become null there)."""
    try:
        unified = pa.unify_schemas([s.remove_metadata() for s in schemas])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise PublishError(f"the committed chunks' columns do not agree: {exc}") from exc
    for name in ("ra", "dec"):
        if name not in unified.names:
            raise PublishError(f"{files[0]}: no {name!r} column; cannot place rows on the sky")
    metadata = next((s.metadata for s in reversed(schemas) if s.metadata), None)
    return unified.with_metadata(metadata) if metadata else unified


# -- output locations ----------------------------------------------------------------------


def _split_output(output: str) -> tuple[str, str, str]:
    """(normalised output URI, its parent, its last component: the catalog's name)."""
    output = output.rstrip("/")
    if "://" in output and not output.startswith("file://"):
        protocol, rest = output.split("://", 1)
        parent, name = posixpath.split(rest)
        if not parent:
            raise PublishError(f"{output}: give a prefix inside the bucket, e.g. {output}/hats")
        parent = f"{protocol}://{parent}"
    else:
        output = os.path.abspath(output.removeprefix("file://"))
        parent, name = os.path.split(output)
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise PublishError(
            f"{output}: the last path component names the HATS catalog, so it may hold "
            "only letters, digits, '.', '_' and '-'"
        )
    return output, parent, name


def hats_path(uri: str):
    """``uri`` as hats/LSDB should open it: a ``UPath`` for remote stores.

    hats turns a plain ``s3://`` string into an *anonymous* S3 path (public buckets);
    a ``UPath`` keeps the usual credentials and endpoint (``AWS_*``), as everywhere else.
    """
    from upath import UPath

    if "://" in uri and not uri.startswith("file://"):
        return UPath(uri)
    return uri.removeprefix("file://")


def is_hats(uri: str) -> bool:
    """Whether ``uri`` holds a HATS collection or catalog (has its properties file)."""
    fs, path = fsspec.core.url_to_fs(uri.rstrip("/"))
    return any(fs.exists(f"{path}/{name}") for name in (COLLECTION_PROPERTIES, CATALOG_PROPERTIES))


def _prepare_output(output: str, overwrite: bool) -> None:
    fs, path = fsspec.core.url_to_fs(output)
    if not fs.exists(path) or not fs.ls(path):
        return
    ours = fs.exists(f"{path}/{PROVENANCE}") or is_hats(output)
    if not overwrite:
        raise PublishError(
            f"{output} is not empty; choose another --output"
            + (" or --overwrite to replace this publication" if ours else "")
        )
    if not ours:
        raise PublishError(f"{output}: not empty and not a HATS publication; never deleted")
    fs.rm(path, recursive=True)


# -- provenance ----------------------------------------------------------------------------


def _properties(metadata: dict, catalog_uri: str, n_missing: int) -> dict[str, str]:
    """Single-line ``raysurvey_*`` properties for hats.properties (the JSON has it all)."""
    bundles = ",".join(
        f"{b.get('model_name')}@{b.get('version')}" for b in metadata.get("bundles", [])
    )
    grid = metadata.get("grid", {})
    props = {
        "raysurvey_source_catalog": catalog_uri,
        "raysurvey_catalog_id": metadata.get("catalog_id", ""),
        "raysurvey_release": metadata.get("release", ""),
        "raysurvey_version": metadata.get("raysurvey_version", ""),
        "raysurvey_bundles": bundles,
        "raysurvey_grid": " ".join(f"{k}={v}" for k, v in grid.items()),
        "raysurvey_rows_no_coordinates": str(n_missing),
        "raysurvey_provenance": f"../{PROVENANCE}",
    }
    return {k: str(v) for k, v in props.items() if v != ""}


def _dask_client(config: PublishConfig, local_dir: str):
    from dask.distributed import Client, LocalCluster

    if config.dask_address:
        return Client(config.dask_address), None
    cluster = LocalCluster(
        n_workers=config.workers,
        threads_per_worker=config.threads_per_worker,
        processes=config.workers > 1,
        local_directory=local_dir,
        dashboard_address=None,
    )
    return Client(cluster), cluster


# -- the publication -----------------------------------------------------------------------


def publish_hats(
    catalog_uri: str, output: str, config: PublishConfig | None = None, log=print
) -> PublishResult:
    """Publish the committed chunks of ``catalog_uri`` as a HATS collection at ``output``."""
    import hats
    from hats_import.collection.arguments import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    from raysurvey.infer.catalog import read_catalog_metadata
    from raysurvey.infer.store import PLAN, CatalogStore

    config = config or PublishConfig()
    if config.margin_arcsec < 0:
        raise PublishError("--margin-arcsec must be >= 0")
    if config.pixel_threshold < 1:
        raise PublishError("--pixel-threshold must be >= 1")
    started = time.perf_counter()
    stages: dict[str, float] = {}
    store = CatalogStore(catalog_uri)
    files = store.committed_files()
    if not files:
        raise PublishError(f"{catalog_uri}: no committed catalog chunks to publish")
    output, parent, name = _split_output(output)
    _prepare_output(output, config.overwrite)
    plan = store.read_plan()

    scratch = tempfile.mkdtemp(prefix="raysurvey-hats-", dir=config.tmp_dir)
    client, cluster = _dask_client(config, os.path.join(scratch, "dask"))
    try:
        # 1. scan: row counts, schemas, and the rows that cannot be placed (on the workers)
        t0 = time.perf_counter()
        scans = client.gather(client.map(scan_file, files, pure=False))
        rows_in = sum(s[0] for s in scans)
        order = mapping_order([s[3] for s in scans], config.pixel_threshold, config.highest_order)
        schema = unify([s[1] for s in scans], files)
        missing = [s[2] for s in scans if s[2].num_rows]
        no_coordinates = (
            pa.concat_tables([t.cast(schema) for t in _conform(missing, schema)])
            if missing
            else schema.empty_table()
        )
        n_missing = no_coordinates.num_rows
        rows_published = rows_in - n_missing
        if rows_published == 0:
            raise PublishError(f"{catalog_uri}: no row has coordinates; nothing to publish")
        schema_file = os.path.join(scratch, "schema.parquet")
        pq.write_table(schema.empty_table(), schema_file)
        stages["scan"] = time.perf_counter() - t0
        log(
            f"publish-hats: {rows_in:,} rows in {len(files)} committed files; "
            f"{n_missing:,} without coordinates; partitions at orders <= {order}"
        )

        # 2. hats-import: the main catalog, then its margin cache
        t0 = time.perf_counter()
        metadata = read_catalog_metadata(schema)
        props = _properties(metadata, catalog_uri, n_missing)
        args = CollectionArguments(
            output_path=hats_path(parent),
            output_artifact_name=name,
            tmp_dir=os.path.join(scratch, "import"),
            dask_tmp=os.path.join(scratch, "dask"),
            resume=False,
            progress_bar=False,
            addl_hats_properties=dict(props),
        ).catalog(
            input_file_list=[hats_path(f) for f in files],
            file_reader=_reader(config.chunk_rows),
            ra_column="ra",
            dec_column="dec",
            use_healpix_29=True,
            use_schema_file=schema_file,
            catalog_type="object",
            pixel_threshold=config.pixel_threshold,
            highest_healpix_order=order,  # no pixel deeper needs splitting
            expected_total_rows=rows_published,
            addl_hats_properties={
                **props,
                "hats_col_healpix": HEALPIX_COLUMN,
                "hats_col_healpix_order": HEALPIX_ORDER,
            },
        )
        if config.margin_arcsec > 0:
            args = args.add_margin(margin_threshold=float(config.margin_arcsec), is_default=True)
        pipeline_with_client(args, client)
        stages["hats-import"] = time.perf_counter() - t0
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)

    # 3. what cannot be placed, and where everything came from
    fs, path = fsspec.core.url_to_fs(output)
    with fs.open(f"{path}/{NO_COORDINATES}", "wb") as f:
        pq.write_table(no_coordinates, f, compression="zstd")
    collection = hats.read_hats(hats_path(output))
    main = collection.main_catalog
    margin_dir = collection.default_margin_catalog_dir if config.margin_arcsec > 0 else None
    margin = hats.read_hats(margin_dir) if margin_dir is not None else None
    if main.catalog_info.total_rows != rows_published:
        raise PublishError(
            f"{output}: HATS catalog has {main.catalog_info.total_rows} rows, "
            f"expected {rows_published}"
        )
    result = PublishResult(
        output=output,
        catalog_path=str(main.catalog_path),
        margin_path=str(margin.catalog_path) if margin is not None else None,
        committed_files=len(files),
        rows_in=rows_in,
        rows_published=rows_published,
        rows_no_coordinates=n_missing,
        partitions=len(main.get_healpix_pixels()),
        margin_rows=int(margin.catalog_info.total_rows or 0) if margin is not None else 0,
        seconds=time.perf_counter() - started,
        stages=stages,
    )
    provenance = {
        "source_catalog": catalog_uri,
        "committed_files": files,
        "plan": asdict(plan) if plan is not None else None,
        "plan_file": store.uri_of(PLAN),
        "catalog_metadata": metadata,
        "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "publisher": {
            "raysurvey": _version("raysurvey"),
            "hats": _version("hats"),
            "hats-import": _version("hats-import"),
        },
        "config": {k: v for k, v in asdict(config).items() if k != "dask_address"},
        "counts": {
            "rows_in": rows_in,
            "rows_published": rows_published,
            "rows_no_coordinates": n_missing,
            "partitions": result.partitions,
            "margin_rows": result.margin_rows,
        },
        "no_coordinates_file": NO_COORDINATES,
        "catalog": posixpath.basename(result.catalog_path),
        "margin": posixpath.basename(result.margin_path) if result.margin_path else None,
    }
    with fs.open(f"{path}/{PROVENANCE}", "w") as f:
        json.dump(provenance, f, indent=2, default=str)
    result.seconds = time.perf_counter() - started
    return result


def _conform(tables: list[pa.Table], schema: pa.Schema) -> list[pa.Table]:
    """Add the columns a table lacks (as nulls) and order them as ``schema``."""
    out = []
    for table in tables:
        columns = [
            table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema
        ]
        out.append(pa.Table.from_arrays(columns, schema=schema.remove_metadata()))
    return out


def _version(package: str) -> str:
    try:
        return version(package)
    except Exception:  # noqa: BLE001 - a provenance field, never fatal
        return "unknown"


# -- a catalog-shaped example (tests, benchmarks) -------------------------------------------


def write_example_catalog(
    uri: str,
    n: int,
    chunk_size: int = 20_000,
    seed: int = 0,
    no_coordinates: int = 0,
    uncommitted_chunks: int = 0,
    dec_range: tuple[float, float] = (-90.0, 90.0),
    ra_range: tuple[float, float] = (0.0, 360.0),
) -> pa.Table:
    """Write an ``n``-row raysurvey catalog, random sky positions in a box; return its rows.

    The catalog has the real layout (plan, chunk files, commit markers: ``CatalogStore``)
    and the real schema and metadata of a class3 catalog (``catalog_schema``, so columns
    added there appear here too); values are drawn, not predicted. ``no_coordinates``
    rows get null or invalid (ra, dec); ``uncommitted_chunks`` more chunks are written
    without their markers, as a killed run leaves them (readers must not see them).
    """
    from raysurvey.infer.catalog import (
        BundleRole,
        catalog_metadata,
        catalog_schema,
        healpix29,
    )
    from raysurvey.infer.store import CatalogPlan, CatalogStore, part_name, release_fingerprint

    if uncommitted_chunks and n % chunk_size:
        raise ValueError("uncommitted_chunks needs n to be a multiple of chunk_size")
    rng = np.random.default_rng(seed)
    labels = ("STAR", "GALAXY", "QSO")
    role = BundleRole(
        uri="/bundles/example-class3",
        role="class",
        model_name="spec_cnn",
        version="example0",
        task="classify",
        labels=labels,
        modalities={"flux1d": {}},
    )
    total = n + uncommitted_chunks * chunk_size
    lo, hi = np.radians(dec_range)
    ra = rng.uniform(ra_range[0], ra_range[1], total) % 360.0
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(lo), np.sin(hi), total)))
    if no_coordinates:
        bad = rng.choice(n, size=no_coordinates, replace=False)
        for k, row in enumerate(bad):  # null ra, null dec, NaN, |dec| > 90 in turn
            if k % 4 == 0:
                ra[row] = np.nan
            elif k % 4 == 1:
                dec[row] = np.nan
            elif k % 4 == 2:
                dec[row] = np.nan
                ra[row] = np.nan
            else:
                dec[row] = 95.0
    survey = np.where(rng.random(total) < 0.5, "lamost", "sdss")
    probs = rng.dirichlet(np.ones(len(labels)), total).astype(np.float32)
    pred = np.array(labels)[probs.argmax(axis=1)]
    error = rng.random(total) < 0.01
    uris = [
        f"/release/{'lamost' if s == 'lamost' else 'sdss'}/spec-{i:08d}.fits"
        for i, s in enumerate(survey)
    ]
    metadata = catalog_metadata([role], "/release/manifest.parquet", "example-catalog")
    schema = catalog_schema([role], metadata)
    null_ra = np.isnan(ra)
    null_dec = np.isnan(dec)
    known = {
        "survey": pa.array(survey),
        "obsid": pa.array(
            [int(1_000_000_000 + i) if s == "lamost" else None for i, s in enumerate(survey)],
            pa.int64(),
        ),
        "specobjid": pa.array(
            [
                None if s == "lamost" else str(3_000_000_000_000_000_000 + i)
                for i, s in enumerate(survey)
            ]
        ),
        "uri": pa.array(uris),
        "ra": pa.array(ra, mask=null_ra),
        "dec": pa.array(dec, mask=null_dec),
        "_healpix_29": pa.array(
            np.where(healpix29(ra, dec) < 0, 0, healpix29(ra, dec)),
            mask=healpix29(ra, dec) < 0,
        ),
        "class": pa.array(np.array(labels)[rng.integers(0, 3, total)]),
        "z": pa.array(rng.gamma(2.0, 0.1, total)),
        "zwarning": pa.array(rng.integers(0, 2, total) * 4, pa.int64()),
        "snr_r": pa.array(rng.lognormal(np.log(20.0), 0.8, total)),
        "good_fraction": pa.array(rng.uniform(0.8, 1.0, total).astype(np.float32)),
        "pred_class": pa.array(np.where(error, None, pred)),
        "confidence": pa.array(probs.max(axis=1), mask=error),
        "status": pa.array(np.where(error, "error", "ok")),
        "error": pa.array(np.where(error, "truncated: example", None)),
        "model_name": pa.array(np.full(total, role.model_name)),
        "model_version": pa.array(np.full(total, role.version)),
        "run_id": pa.array(np.full(total, "example-run")),
        "created_at": pa.array(
            np.full(total, np.datetime64("2026-01-01T00:00:00", "us")),
            pa.timestamp("us", tz="UTC"),
        ),
    }
    for k, label in enumerate(labels):
        known[f"prob_{label.lower()}"] = pa.array(probs[:, k], mask=error)
    columns = []
    for f in schema:
        if f.name in known:
            columns.append(known[f.name].cast(f.type))
        elif pa.types.is_floating(f.type):  # a column added since: drawn, never null
            columns.append(pa.array(rng.random(total)).cast(f.type))
        elif pa.types.is_integer(f.type):
            columns.append(pa.array(rng.integers(0, 4, total)).cast(f.type))
        else:
            columns.append(pa.nulls(total, f.type))
    table = pa.Table.from_arrays(columns, schema=schema)
    store = CatalogStore(uri)
    plan = store.open(
        CatalogPlan(
            release="/release/manifest.parquet",
            fingerprint=release_fingerprint(uris),
            n_rows=total,
            chunk_size=chunk_size,
            bundles=[{"uri": role.uri, "version": role.version}],
            catalog_id="example-catalog",
        )
    )
    committed_chunks = -(-n // chunk_size)
    for chunk in range(plan.n_chunks):
        start, stop = plan.chunk_rows(chunk)
        part = table.slice(start, stop - start)
        if chunk < committed_chunks:
            store.write_chunk(chunk, part, run_id="example-run")
        else:  # the file of a chunk whose commit never happened
            with store.fs.open(store._join(part_name(chunk)), "wb") as f:
                pq.write_table(part, f)
    return table.slice(0, n)


# -- reading a publication back --------------------------------------------------------------


def hats_partition_files(uri: str) -> list[str]:
    """URIs of the main catalog's partition files of a HATS collection or catalog."""
    import hats
    from hats.io import paths

    opened = hats.read_hats(hats_path(uri.rstrip("/")))
    main = getattr(opened, "main_catalog", opened)
    base = main.catalog_base_dir
    files = [
        str(paths.pixel_catalog_file(base, pixel, npix_suffix=main.catalog_info.npix_suffix))
        for pixel in main.get_healpix_pixels()
    ]
    return files


def read_provenance(uri: str) -> dict:
    """The ``raysurvey_catalog.json`` of a publication."""
    fs, path = fsspec.core.url_to_fs(uri.rstrip("/"))
    with fs.open(f"{path}/{PROVENANCE}", "r") as f:
        return json.load(f)


def no_coordinates_table(uri: str) -> pa.Table:
    """The rows of a publication that had no usable coordinates."""
    fs, path = fsspec.core.url_to_fs(uri.rstrip("/"))
    with fs.open(f"{path}/{NO_COORDINATES}", "rb") as f:
        return pq.read_table(f)


__all__ = [
    "NO_COORDINATES",
    "PROVENANCE",
    "CatalogChunkReader",
    "PublishConfig",
    "PublishError",
    "PublishResult",
    "coordinates_mask",
    "hats_partition_files",
    "is_hats",
    "no_coordinates_table",
    "publish_hats",
    "read_provenance",
]


# -- command line (``raysurvey publish-hats`` and ``jobs/publish_hats.py``) ----------------


def add_arguments(parser) -> None:
    """The options of ``publish-hats``."""
    defaults = PublishConfig()
    parser.add_argument("--catalog", required=True, help="raysurvey catalog (path or s3://)")
    parser.add_argument(
        "--output",
        required=True,
        help="HATS collection to write (path or s3://); its last component names the catalog",
    )
    parser.add_argument(
        "--margin-arcsec",
        type=float,
        default=defaults.margin_arcsec,
        help="margin cache width in arcsec (0: no margin cache)",
    )
    parser.add_argument(
        "--pixel-threshold",
        type=int,
        default=defaults.pixel_threshold,
        help="most rows in one HEALPix partition",
    )
    parser.add_argument(
        "--highest-order",
        type=int,
        default=defaults.highest_order,
        help="deepest HEALPix order of a partition",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="local Dask workers (1: threads in this process; more: processes)",
    )
    parser.add_argument("--threads-per-worker", type=int, default=defaults.threads_per_worker)
    parser.add_argument("--dask-address", help="use this Dask scheduler (tcp://HOST:8786)")
    parser.add_argument("--tmp-dir", help="local scratch for intermediate files")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier publication at --output"
    )


def run_from_args(args) -> int:
    """Run a publication from parsed ``add_arguments`` options; print what it wrote."""
    import sys

    config = PublishConfig(
        margin_arcsec=args.margin_arcsec,
        pixel_threshold=args.pixel_threshold,
        highest_order=args.highest_order,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        dask_address=args.dask_address,
        overwrite=args.overwrite,
        tmp_dir=args.tmp_dir,
    )
    try:
        result = publish_hats(
            args.catalog, args.output, config, log=lambda m: print(m, file=sys.stderr)
        )
    except PublishError as exc:
        print(f"publish-hats: {exc}", file=sys.stderr)
        return 2
    print("\n".join(result.lines()))
    return 0
