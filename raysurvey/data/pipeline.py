"""The streaming Ray Data pipeline: manifest -> decode (CPU tasks) -> modalities (actors).

Rows stay in Arrow between stages so the manifest's nullable columns (``obsid`` is
null for SDSS rows, ``zwarning`` for LAMOST) keep their types; only ``flux`` and the
modality columns are numpy tensors. Nothing is materialised: the dataset is
consumed by training (``iter_torch_batches``), inference or ``write_features``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from raysurvey.data.decode import STATUS_ERROR, STATUS_OK, DecodeOptions, decode_uris
from raysurvey.data.features import RAW_2D, ComputeModalities, check_modalities, products_for


@dataclass(frozen=True)
class PipelineConfig:
    """Batch sizes and parallelism of the pipeline's two stages.

    Decoding (FITS parse + resampling, ~9 ms a spectrum) costs about five times the
    modalities of a typical request (flux1d + map2d + mel, ~2 ms), so most CPUs go
    to decode tasks: they ask for ``decode_cpus`` = 0.5 each, the actors for 1 CPU
    (one torch thread). The different requests also keep Ray from fusing the two
    stages into the actors. ``max_actors`` None means a quarter of the cluster's
    CPUs (at least 1); never give the actor pool every CPU, the decode tasks would
    then never run.
    """

    decode_batch_size: int = 32
    modality_batch_size: int = 32
    decode_cpus: float = 0.5
    decode_tasks: int | None = None
    actor_cpus: float = 1.0
    min_actors: int = 1
    max_actors: int | None = None
    decode: DecodeOptions = field(default_factory=DecodeOptions)

    def actor_pool_size(self, cluster_cpus: float) -> tuple[int, int]:
        """(min, max) actors for a cluster of ``cluster_cpus`` CPUs."""
        maximum = self.max_actors or max(1, int(cluster_cpus // 4))
        return min(self.min_actors, maximum), maximum


def tensor_array(values: np.ndarray) -> pa.Array:
    """A numpy [B, ...] array as Ray's Arrow tensor column."""
    from ray.data.extensions import ArrowTensorArray

    return ArrowTensorArray.from_numpy(np.ascontiguousarray(values))


def column_numpy(table: pa.Table, name: str) -> np.ndarray:
    """A column as numpy: tensors as [B, ...], strings as object arrays."""
    column = table.column(name).combine_chunks()
    if hasattr(column, "to_numpy") and isinstance(column.type, pa.ExtensionType):
        return column.to_numpy()
    return column.to_numpy(zero_copy_only=False)


def with_columns(table: pa.Table, columns: Mapping[str, np.ndarray]) -> pa.Table:
    """Append (or replace) numpy columns: 2D+ as tensors, 1D as plain Arrow arrays."""
    for name, values in columns.items():
        array = tensor_array(values) if values.ndim > 1 else pa.array(values)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


def decode_table(table: pa.Table, options: DecodeOptions) -> pa.Table:
    """Arrow-batch wrapper of ``decode_uris``: a plain function, so Ray runs it as tasks.

    (A callable class would become an actor pool holding CPUs for good.) Header
    values asked for in ``options.header_keys`` fill the nulls of the same-named
    table columns (the manifest wins where it has a value).
    """
    uris = table.column("uri").to_pylist()
    decoded = decode_uris(uris, options)
    for key in options.header_keys:
        values = decoded.pop(f"header_{key}").tolist()
        table = _fill_nulls(table, key, values)
    if options.products:
        decoded = decoded | decode_products(table, options.products, decoded)
    return with_columns(table, decoded)


def decode_products(table: pa.Table, products, decoded: dict) -> dict[str, np.ndarray]:
    """The 2D products of each row (``stripes_uri``, ``cutout_uri``), with ``status`` and
    ``error`` updated: a row whose 1D spectrum reads but whose stripes or cutout do not
    is an error row too (the model cannot see it), reported with the product's reason."""
    from raysurvey.data.decode_2d import decode_cutouts, decode_stripes

    status = np.array(decoded["status"], dtype=object)
    error = np.array(decoded["error"], dtype=object)
    out = {}
    for product, column, fn in (
        ("stripes", "stripes_uri", decode_stripes),
        ("cutout", "cutout_uri", decode_cutouts),
    ):
        if product not in products:
            continue
        uris = (
            table.column(column).to_pylist()
            if column in table.column_names
            else [None] * table.num_rows
        )
        result = fn(uris)
        bad = (result.pop("status") != STATUS_OK) & (status == STATUS_OK)
        reasons = result.pop("error")
        status[bad] = STATUS_ERROR
        for i in np.flatnonzero(bad):  # the row's uri is the 1D file: name the product's
            code, _, message = str(reasons[i]).partition(": ")
            where = f"{column} {uris[i]}" if uris[i] else f"no {column}"
            error[i] = f"{code}: {where}: {message}"
        out |= result
    return out | {"status": status, "error": error}


def _fill_nulls(table: pa.Table, name: str, values: list) -> pa.Table:
    """Column ``name`` with its nulls replaced by ``values`` (added if missing)."""
    if name not in table.column_names:
        return table.append_column(name, pa.array(values))
    column = table.column(name).combine_chunks()
    filled = pc.coalesce(column, pa.array(values).cast(column.type, safe=False))
    return table.set_column(table.column_names.index(name), name, filled)


class ModalityStage(ComputeModalities):
    """Arrow-batch wrapper of ``ComputeModalities`` (stateful; run in a Ray actor pool)."""

    def __call__(self, table: pa.Table) -> pa.Table:  # type: ignore[override]
        batch = {name: column_numpy(table, name) for name in ("flux", "status")}
        if "survey" in table.column_names:
            batch["survey"] = column_numpy(table, "survey")
        for key in RAW_2D:
            if key in table.column_names:
                batch[key] = column_numpy(table, key)
        computed = super().__call__(batch)
        computed.pop("status")
        computed.pop("survey", None)
        if not self.keep_flux:
            table = table.drop_columns(["flux"])
            computed.pop("flux", None)
        table = table.drop_columns([k for k in RAW_2D if k in table.column_names])
        return with_columns(table, computed)


def manifest_blocks(table: pa.Table, rows_per_block: int):
    """A Ray Dataset of manifest rows in blocks of ``rows_per_block`` (no shuffle task)."""
    import ray.data

    step = max(1, rows_per_block)
    return ray.data.from_arrow(
        [table.slice(i, step) for i in range(0, table.num_rows, step)] or [table]
    )


def build_dataset(
    manifest_uri: str,
    modalities: Sequence[str],
    options: Mapping[str, Mapping] | None = None,
    *,
    columns: Sequence[str] | None = None,
    keep_flux: bool = False,
    config: PipelineConfig | None = None,
    limit: int | None = None,
):
    """A streaming Ray Dataset of modalities for every spectrum of a manifest.

    Parameters
    ----------
    manifest_uri : str
        The release's ``manifest.parquet`` (local path or s3://).
    modalities : sequence of str
        Names from ``raysurvey.modalities.list_modalities()``.
    options : mapping, optional
        Per-modality options, e.g. ``{"mel": {"variant": "paper"}}``.
    columns : sequence of str, optional
        Manifest columns to carry (default: all of them; ``uri`` always).
    keep_flux : bool
        Keep the grid flux column beside the modalities.
    config : PipelineConfig, optional
        Batch sizes and parallelism (defaults: ``PipelineConfig()``).
    limit : int, optional
        Only the first ``limit`` manifest rows (quick looks).

    Returns
    -------
    ray.data.Dataset
        One row per manifest row: the manifest columns, ``good_fraction``, ``snr``,
        ``status`` ("ok" | "error"), ``error`` and one column per modality (zeros
        where ``status`` is "error").
    """
    import ray.data

    names = check_modalities(modalities)
    config = config or PipelineConfig()
    if columns is not None:
        columns = list(dict.fromkeys(["uri", "survey", *columns]))
    local = "://" not in manifest_uri or manifest_uri.startswith("file://")
    filesystem = pafs.LocalFileSystem() if local else None  # skips a slow fs probe
    path = manifest_uri.removeprefix("file://") if local else manifest_uri
    ds = ray.data.read_parquet(path, columns=columns, filesystem=filesystem)
    if limit is not None:
        ds = ds.limit(limit)
    return add_modalities(ds, names, options, keep_flux=keep_flux, config=config)


def add_modalities(
    ds,
    modalities: Sequence[str],
    options: Mapping[str, Mapping] | None = None,
    *,
    keep_flux: bool = False,
    config: PipelineConfig | None = None,
    repartition: bool = True,
):
    """Decode and compute ``modalities`` for a Ray Dataset of manifest rows.

    ``build_dataset`` reads a manifest and calls this; training calls it on its split
    (and class-balanced) manifest rows, already cut into small blocks
    (``manifest_blocks``), with ``repartition=False``: a repartition task asks for a
    whole CPU, which a cluster shared with training workers may not have free.
    """
    import ray.data

    names = check_modalities(modalities)
    config = config or PipelineConfig()
    products = products_for(names)
    if products and not set(products) <= set(config.decode.products):
        decode = replace(config.decode, products=(*config.decode.products, *products))
        config = replace(config, decode=decode)
    if repartition:
        # A manifest file is one block; small blocks are what spread decoding over tasks.
        ds = ds.repartition(target_num_rows_per_block=config.decode_batch_size)
    ds = ds.map_batches(
        decode_table,
        fn_kwargs={"options": config.decode},
        batch_format="pyarrow",
        batch_size=config.decode_batch_size,
        num_cpus=config.decode_cpus,
        compute=ray.data.TaskPoolStrategy(size=config.decode_tasks)
        if config.decode_tasks
        else None,
    )
    min_actors, max_actors = config.actor_pool_size(ray.cluster_resources().get("CPU", 1))
    return ds.map_batches(
        ModalityStage,
        fn_constructor_kwargs={"names": names, "options": options, "keep_flux": keep_flux},
        batch_format="pyarrow",
        batch_size=config.modality_batch_size,
        num_cpus=config.actor_cpus,
        compute=ray.data.ActorPoolStrategy(min_size=min_actors, max_size=max_actors),
    )
