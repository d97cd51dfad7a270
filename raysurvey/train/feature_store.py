"""Modalities computed once and shared by many training runs (a sweep's trials).

A sweep trains dozens of models on the same spectra: decoding the FITS files and
computing the modalities again for each trial would cost more than the training.
``build_feature_store`` runs the pipeline once over a manifest and writes the rows
(``uri``, ``status``, one column per modality) as Parquet to a URI beside a
``_features.json`` that records the manifest, the modalities and their options.
``fit`` then takes ``RunSpec.features`` and builds each split from those rows, so no
trial decodes a file; the options a model needs must match the stored ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from raysurvey.data.features import check_modalities, output_columns

INFO_FILE = "_features.json"


class FeatureStoreError(ValueError):
    """A feature store that is missing, incomplete or built for other inputs."""


def manifest_fingerprint(table: pa.Table) -> str:
    """A hash of the manifest's URIs in order: which spectra the store holds."""
    digest = hashlib.blake2b(digest_size=12)
    for uri in table.column("uri").to_pylist():
        digest.update(uri.encode() + b"\0")
    return digest.hexdigest()


def _read_info(uri: str) -> dict | None:
    fs, path = fsspec.core.url_to_fs(uri)
    info = f"{path.rstrip('/')}/{INFO_FILE}"
    if not fs.exists(info):
        return None
    with fs.open(info) as f:
        return json.load(f)


def build_feature_store(
    manifest: pa.Table,
    modalities: Sequence[str],
    options: Mapping[str, Mapping],
    uri: str,
    pipeline=None,
) -> dict:
    """Compute ``modalities`` for every row of ``manifest`` into ``uri``, once.

    An existing store for the same manifest rows, modalities and options is reused
    (a resumed sweep); one for anything else is refused, never overwritten. A store
    without its ``_features.json`` is a write that did not finish: it is replaced.
    """
    from raysurvey.data.pipeline import PipelineConfig, add_modalities, manifest_blocks

    names = check_modalities(modalities)
    want = {
        "fingerprint": manifest_fingerprint(manifest),
        "rows": manifest.num_rows,
        "modalities": names,
        "options": {m: dict(options.get(m, {})) for m in names},
    }
    info = _read_info(uri)
    if info is not None:
        if {k: info.get(k) for k in want} != json.loads(json.dumps(want)):
            raise FeatureStoreError(
                f"{uri} holds features of other inputs ({info.get('rows')} rows of "
                f"{info.get('modalities')}); choose another location"
            )
        return info
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)  # an unfinished write: no info file
    config = pipeline or PipelineConfig()
    columns = ["uri", *(c for c in ("survey",) if c in manifest.column_names)]
    blocks = manifest_blocks(manifest.select(columns), config.decode_batch_size)
    ds = add_modalities(blocks, names, want["options"], config=config, repartition=False)
    ds.select_columns(["uri", "status", "error", *output_columns(names)]).write_parquet(uri)
    stored = load_features(uri, ["uri"], check=False).num_rows
    if stored != manifest.num_rows:
        raise FeatureStoreError(f"{uri}: wrote {stored} rows for {manifest.num_rows} spectra")
    with fs.open(f"{path.rstrip('/')}/{INFO_FILE}", "w") as f:
        json.dump(want, f, indent=2)
    return want


def load_features(uri: str, columns: Sequence[str], check: bool = True) -> pa.Table:
    """The store's rows, only ``columns`` (tensor columns keep Ray's tensor type)."""
    import ray.data  # noqa: F401  (registers Ray's Arrow tensor extension types)

    if check and _read_info(uri) is None:
        raise FeatureStoreError(f"{uri} is not a finished feature store (no {INFO_FILE})")
    fs, path = fsspec.core.url_to_fs(uri)
    dataset = pads.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True)
    return dataset.to_table(columns=list(columns))


def check_options(uri: str, options: Mapping[str, Mapping]) -> None:
    """Refuse a store whose modality options differ from what a model needs."""
    info = _read_info(uri)
    if info is None:
        raise FeatureStoreError(f"{uri} is not a finished feature store (no {INFO_FILE})")
    for name, wanted in options.items():
        if name not in info["modalities"]:
            raise FeatureStoreError(
                f"{uri} has no {name!r} column (it holds {', '.join(info['modalities'])})"
            )
        stored = info["options"].get(name, {})
        if json.loads(json.dumps(dict(wanted))) != stored:
            raise FeatureStoreError(
                f"{uri}: {name} was computed with options {stored}, the model needs {dict(wanted)}"
            )


def rows_for(features: pa.Table, split: pa.Table, columns: Sequence[str]) -> pa.Table:
    """The feature rows of ``split`` (in its order, replicated rows repeated) beside the
    split's own ``columns`` (labels, targets)."""
    index = {u: i for i, u in enumerate(features.column("uri").to_pylist())}
    uris = split.column("uri").to_pylist()
    missing = [u for u in uris if u not in index]
    if missing:
        raise FeatureStoreError(
            f"{len(missing)} spectra are not in the feature store, e.g. {missing[0]}"
        )
    rows = features.take(pa.array(np.fromiter((index[u] for u in uris), np.int64, len(uris))))
    for name in columns:
        rows = rows.append_column(name, split.column(name))
    return rows
