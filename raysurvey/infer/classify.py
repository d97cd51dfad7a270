"""Classify a whole release into an exactly-once, resumable Parquet catalog.

The stream: release rows -> decode (CPU tasks) -> the modalities the bundles need (CPU
actors) -> ``Predictor`` actors on GPUs -> the driver, which gathers each chunk's rows,
writes the chunk and commits it (``raysurvey.infer.store``). Without GPUs the three
stages run fused in one pool of one-CPU actors (``raysurvey.infer.fused``). Only
catalog columns come back to the driver (no tensors), so it stays small however large
the release is.

Rows carry their position in the release (``_row``): the driver keeps the first copy
of a row and drops any repeat (a re-executed block after a worker failure), and
commits a chunk only when every one of its rows has arrived. At the end the
catalog is checked against the release, chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raysurvey.data.decode import DecodeOptions
from raysurvey.data.pipeline import PipelineConfig, add_modalities, manifest_blocks
from raysurvey.infer.catalog import (
    CATALOG_VERSION,
    catalog_metadata,
    catalog_schema,
    modalities_of,
    plan_bundles,
    read_catalog_metadata,
)
from raysurvey.infer.check import CheckReport, check_catalog
from raysurvey.infer.fused import FusedPredictor
from raysurvey.infer.predict import ROW, Predictor
from raysurvey.infer.redshift_stage import plan_redshift
from raysurvey.infer.release import HEADER_KEYS, Release, read_release
from raysurvey.infer.store import (
    CatalogPlan,
    CatalogStore,
    CatalogStoreError,
    release_fingerprint,
)
from raysurvey.models.bundle import read_manifest

#: Blocks queued at each fused actor. Ray Data's default (4) leaves the actors idle
#: between blocks while the next is dispatched: on 2 CPUs, 30k spectra streamed at 629/s
#: with 1, ~870/s with 4, ~1040/s with 16 and ~1065/s with 32 (docs/benchmarks.md).
FUSED_BLOCKS_IN_FLIGHT = 16
#: Set by ``ray job submit`` in the entrypoint's environment.
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


@dataclass(frozen=True)
class ClassifyConfig:
    """Chunking, batch sizes and parallelism of a classify run.

    ``chunk_size``: release rows per catalog file and commit (the unit a rerun
    redoes; ~20k rows make files of a few MB). ``num_gpus_per_actor``: None puts one
    predictor per GPU when the cluster has GPUs and uses CPU predictors otherwise;
    0 forces CPU. ``predict_actors``: None means one per GPU share, or a quarter of
    the CPUs (at least 1) on CPU. ``modality_actors``: the most modality actors (None:
    a quarter of the CPUs present at the start; give it on an autoscaling cluster, where
    the pools grow as nodes join). ``modality_cpus`` must differ from the decode
    tasks' 0.5: Ray fuses two stages with equal requests into the actor pool, and
    decoding (most of the CPU work) would then run only in the modality actors.
    ``rows_per_block``: manifest rows per input block. Small blocks keep all three
    stages busy: measured on 2 CPUs (spec_cnn), 64-row blocks stream at ~113
    spectra/s, 256-row blocks at ~81 and 500-row blocks at ~90, with the first rows
    arriving later the bigger the blocks. ``fused``: run decode, modalities and
    prediction in one pool of ``fused_cpus``-CPU actors (``raysurvey.infer.fused``),
    ``predict_actors`` of them (default: the cluster's CPUs / ``fused_cpus``); None
    fuses when the predictors run on CPU (no GPUs, or ``num_gpus_per_actor=0``).
    """

    chunk_size: int = 20_000
    batch_size: int = 64
    decode_batch_size: int = 32
    rows_per_block: int = 64
    num_gpus_per_actor: float | None = None
    predict_actors: int | None = None
    modality_actors: int | None = None
    predict_cpus: float = 0.5
    modality_cpus: float = 0.25
    overwrite: bool = False
    progress_every_s: float = 10.0
    fused: bool | None = None
    fused_cpus: float = 1.0

    def __post_init__(self):
        if self.chunk_size < 1 or self.batch_size < 1:
            raise ValueError("chunk_size and batch_size must be positive")


@dataclass
class ClassifyResult:
    """What a run did: chunks written now and before, throughput, the final check."""

    output: str
    n_rows: int
    chunks_total: int
    chunks_skipped: int
    chunks_written: int
    rows_written: int
    seconds: float
    check: CheckReport
    duplicates_dropped: int = 0
    run_id: str = ""

    @property
    def rate(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def current_run_id() -> str:
    """The Ray job submission id when run by ``ray job submit``, else a fresh id."""
    try:
        meta = json.loads(os.environ.get(_JOB_CONFIG_ENV, "{}")).get("metadata", {})
    except json.JSONDecodeError:
        meta = {}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return meta.get("job_submission_id") or f"{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class Progress:
    """Spectra done / total, rate and ETA, printed at most every ``every_s`` seconds."""

    total: int
    every_s: float
    log: Callable[[str], None]
    done: int = 0
    start: float = field(default_factory=time.perf_counter)
    _last: float = 0.0

    def update(self, rows: int, force: bool = False) -> None:
        self.done += rows
        now = time.perf_counter()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta_text = f"{eta:,.0f} s" if np.isfinite(eta) else "?"
        self.log(
            f"classify: {self.done:,}/{self.total:,} spectra ({pct:.1f} %), "
            f"{rate:,.1f} spectra/s, ETA {eta_text}"
        )


class ChunkAssembler:
    """Gathers streamed rows per chunk; writes and commits a chunk once it is whole."""

    def __init__(self, plan: CatalogPlan, chunks, store, schema, provenance, log):
        self.plan, self.store, self.schema = plan, store, schema
        self.provenance, self.log = provenance, log
        self.parts: dict[int, list[pa.Table]] = {k: [] for k in chunks}
        self.seen = {}
        for k in chunks:
            start, stop = plan.chunk_rows(k)
            self.seen[k] = np.zeros(stop - start, dtype=bool)
        self.written = 0
        self.rows_written = 0
        self.duplicates = 0

    def add(self, batch: pa.Table) -> None:
        rows = batch.column(ROW).to_numpy()
        chunk_of = rows // self.plan.chunk_size
        for chunk in np.unique(chunk_of):
            chunk = int(chunk)
            if chunk not in self.parts:
                raise RuntimeError(f"row of chunk {chunk}, which this run does not own")
            offset = rows[chunk_of == chunk] - chunk * self.plan.chunk_size
            first = ~self.seen[chunk][offset]
            # Repeats (a block re-run after a failure) and repeats within the batch.
            _, unique_index = np.unique(offset, return_index=True)
            keep = np.zeros(len(offset), bool)
            keep[unique_index] = True
            keep &= first
            self.duplicates += int((~keep).sum())
            self.seen[chunk][offset[keep]] = True
            part = batch.filter(pa.array(chunk_of == chunk))
            self.parts[chunk].append(part.filter(pa.array(keep)))
            if self.seen[chunk].all():
                self._commit(chunk)

    def _commit(self, chunk: int) -> None:
        table = pa.concat_tables(self.parts.pop(chunk))
        table = table.take(pc.sort_indices(table.column(ROW))).drop_columns([ROW])
        created = pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC"))
        n = table.num_rows
        for name, value in self.provenance.items():
            table = table.append_column(name, pa.array([value] * n, pa.string()))
        table = table.append_column("created_at", pa.array([created.as_py()] * n, created.type))
        for f in self.schema:  # columns no bundle fills (e.g. teff_pred) are null
            if f.name not in table.column_names:
                table = table.append_column(f.name, pa.nulls(n, f.type))
        table = table.select(self.schema.names).cast(self.schema)
        marker = self.store.write_chunk(chunk, table, self.provenance["run_id"])
        self.written += 1
        self.rows_written += n
        self.log(f"classify: committed chunk {chunk} ({n:,} rows, {marker['bytes']:,} bytes)")

    def missing(self) -> dict[int, int]:
        """Chunks still open at the end, with how many of their rows never arrived."""
        return {k: int((~self.seen[k]).sum()) for k in self.parts}


def _rows_to_run(release: Release, plan: CatalogPlan, chunks: Sequence[int]) -> pa.Table:
    table = release.table.append_column(ROW, pa.array(np.arange(release.table.num_rows)))
    return pa.concat_tables(table.slice(s, e - s) for s, e in map(plan.chunk_rows, chunks))


def _predictor_resources(config: ClassifyConfig, resources: dict) -> tuple[float, int, float]:
    """(GPUs per actor, number of actors, CPUs per actor) for this cluster."""
    gpus = resources.get("GPU", 0)
    per_actor = config.num_gpus_per_actor
    if per_actor is None:
        per_actor = 1.0 if gpus >= 1 else 0.0
    if per_actor > 0:
        if gpus < per_actor:
            raise RuntimeError(
                f"--num-gpus-per-actor {per_actor} but the cluster has {gpus:g} GPUs"
            )
        actors = config.predict_actors or max(1, int(gpus // per_actor))
    else:
        actors = config.predict_actors or max(1, int(resources.get("CPU", 1) // 4))
    return per_actor, actors, config.predict_cpus


def _check_committed_schema(store: CatalogStore, committed: dict, schema: pa.Schema) -> None:
    """Refuse to resume a catalog whose committed chunks have another column layout
    (e.g. one written before ``warning`` and ``ood_score`` existed): the finished
    catalog would mix schemas."""
    if not committed:
        return
    import pyarrow.parquet as pq

    first = min(committed)
    with store.fs.open(store._join(committed[first]["file"]), "rb") as f:
        old = pq.read_schema(f)
    if old.names != schema.names:
        gone = [n for n in schema.names if n not in old.names]
        extra = [n for n in old.names if n not in schema.names]
        version = read_catalog_metadata(old).get("format_version", 1)
        raise CatalogStoreError(
            f"{store.uri} holds chunks of catalog format {version} with other columns "
            f"(missing {gone or 'none'}, extra {extra or 'none'}); this raysurvey writes "
            f"format {CATALOG_VERSION}. Use a new --output, or --overwrite to redo it"
        )


def classify_release(
    release_uri: str,
    bundle_uris: Sequence[str],
    output_uri: str,
    config: ClassifyConfig | None = None,
    log: Callable[[str], None] | None = None,
    templates: str | None = None,
    template_check: bool = True,
) -> ClassifyResult:
    """Classify every spectrum of ``release_uri`` into the catalog at ``output_uri``.

    ``templates``: a Redrock template directory (path or s3://); every ok row then gets
    a template-fit ``z_pred``, ``z_pred_err`` and the Z_UNRELIABLE bit; with
    ``template_check`` also ``template_class`` and the TEMPLATE_DISAGREES bit (every
    class fitted: about twice the redshift cost).

    Resumable: committed chunks of an earlier run with the same release, chunking and
    bundles are kept; the rest are (re)done. Raises ``CatalogCheckError`` when the
    finished catalog does not hold exactly one row per release row.
    """
    import ray

    config = config or ClassifyConfig()
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    start = time.perf_counter()
    release = read_release(release_uri)
    roles = plan_bundles([(uri, read_manifest(uri)) for uri in bundle_uris])
    redshift = plan_redshift(templates, roles, template_check)
    store = CatalogStore(output_uri)
    proposed = CatalogPlan(
        release=release_uri,
        fingerprint=release_fingerprint(release.uris),
        n_rows=release.table.num_rows,
        chunk_size=config.chunk_size,
        bundles=[{"uri": r.uri, "version": r.version, "model_name": r.model_name} for r in roles],
        catalog_id=uuid.uuid4().hex[:12],
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        redshift=redshift.summary() if redshift else None,
    )
    plan = store.open(proposed, overwrite=config.overwrite)
    committed = store.committed()
    _check_committed_schema(store, committed, catalog_schema(roles))
    pending = [k for k in range(plan.n_chunks) if k not in committed]
    run_id = current_run_id()
    log(
        f"classify: {plan.n_rows:,} spectra from {release_uri}"
        f"{' (listed; ids and labels from the headers)' if release.listed else ''} -> "
        f"{output_uri}: {plan.n_chunks} chunks of {plan.chunk_size:,}, "
        f"{len(committed)} already committed, {len(pending)} to do; run {run_id}"
    )
    for role in roles:
        log(f"classify: {role.role:10s} {role.model_name} {role.version} ({role.uri})")
        if role.task == "classify" and not role.calibration:
            log(
                f"classify: {role.uri} has no calibration: raw softmax probabilities, no "
                "ood_score, no LOW_CONFIDENCE / OUT_OF_DISTRIBUTION bits "
                "(add one with `raysurvey calibrate-bundle`)"
            )
    if redshift:
        log(
            f"classify: redshifts  template chi^2 fit of {len(redshift.files)} template files "
            f"({redshift.templates}) with each row's pred_class"
            + ("; every class fitted for template_class" if template_check else "")
        )

    assembler = None
    if pending:
        metadata = catalog_metadata(roles, release_uri, plan.catalog_id)
        if redshift:
            metadata["redshift"] = redshift.summary()
        schema = catalog_schema(roles, metadata)
        provenance = {
            "model_name": "+".join(r.model_name for r in roles),
            "model_version": "+".join(r.version for r in roles),
            "run_id": run_id,
        }
        assembler = ChunkAssembler(plan, pending, store, schema, provenance, log)
        rows = _rows_to_run(release, plan, pending)
        if not ray.is_initialized():
            ray.init()
        ray.data.DataContext.get_current().enable_progress_bars = False
        resources = ray.cluster_resources()
        gpus, actors, cpus = _predictor_resources(config, resources)
        fused = config.fused if config.fused is not None else gpus == 0
        if fused and gpus:
            raise ValueError("fused=True runs CPU predictors: give num_gpus_per_actor=0")
        block = config.rows_per_block
        pipeline = PipelineConfig(
            decode_batch_size=config.decode_batch_size,
            modality_batch_size=config.batch_size,
            actor_cpus=config.modality_cpus,
            max_actors=config.modality_actors,
            decode=DecodeOptions(
                header_keys=HEADER_KEYS if release.listed else (),
                keep_ivar=redshift is not None,
            ),
        )
        names = modalities_of(roles)
        if fused:
            cpus = config.fused_cpus
            actors = config.predict_actors or max(1, int(resources.get("CPU", 1) // cpus))
            ds = manifest_blocks(rows, block).map_batches(
                FusedPredictor,
                fn_constructor_kwargs={
                    "roles": roles,
                    "modalities": names,
                    "decode": pipeline.decode,
                    "threads": max(1, int(cpus)),
                    "redshift": redshift,
                },
                batch_format="pyarrow",
                batch_size=None,  # a whole block: the rows were cut to rows_per_block
                num_cpus=cpus,
                # all actors asked for at once, but the run starts with the first:
                # on an autoscaling cluster the rest arrive as nodes join
                compute=ray.data.ActorPoolStrategy(
                    min_size=1,
                    max_size=actors,
                    initial_size=actors,
                    max_tasks_in_flight_per_actor=FUSED_BLOCKS_IN_FLIGHT,
                ),
            )
        else:
            ds = add_modalities(
                manifest_blocks(rows, block),
                list(names),
                names,
                keep_flux=redshift is not None,
                config=pipeline,
                repartition=False,
            )
            ds = ds.map_batches(
                Predictor,
                fn_constructor_kwargs={
                    "roles": roles,
                    "use_gpu": gpus > 0,
                    "threads": max(1, int(round(cpus))),
                    "redshift": redshift,
                },
                batch_format="pyarrow",
                batch_size=config.batch_size,
                num_gpus=gpus or None,
                num_cpus=cpus,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            )
        log(
            f"classify: modalities {', '.join(names)}; "
            + (
                f"fused decode + modalities + predict: {actors} x {cpus:g} CPU"
                if fused
                else f"predictors: {actors} x ({f'{gpus:g} GPU, ' if gpus else ''}{cpus:g} CPU)"
            )
            + f"; blocks of {block} rows"
        )
        progress = Progress(rows.num_rows, config.progress_every_s, log)
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            assembler.add(batch)
            progress.update(batch.num_rows)
        progress.update(0, force=True)
        missing = assembler.missing()
        if missing:
            raise RuntimeError(f"the stream ended with chunks incomplete (rows missing): {missing}")
    seconds = time.perf_counter() - start
    check = check_catalog(store, release, plan)
    return ClassifyResult(
        output=output_uri,
        n_rows=plan.n_rows,
        chunks_total=plan.n_chunks,
        chunks_skipped=len(committed),
        chunks_written=assembler.written if assembler else 0,
        rows_written=assembler.rows_written if assembler else 0,
        seconds=seconds,
        check=check,
        duplicates_dropped=assembler.duplicates if assembler else 0,
        run_id=run_id,
    )
