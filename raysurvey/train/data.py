"""What a training run reads: manifest rows with labels or targets, split and balanced.

The manifest is small (one row per spectrum, no pixels), so it is read whole on the
driver; the pixels stream later through the pipeline (``raysurvey.data.add_modalities``)
on each split's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurvey.labels import LABEL_SETS, label_of
from raysurvey.train.splits import SPLITS, assign_splits, balance_by_replication, object_ids

TASKS = ("classify", "redshift", "stellar_params")
#: Regression targets per task: the manifest column, else its synthetic-truth twin.
TARGETS = {"redshift": ("z",), "stellar_params": ("teff", "logg", "feh")}
KEEP = ("uri", "survey", "obsid", "specobjid", "class", "subclass", "z")
#: Carried when the manifest has them: the 2D products' files (``raysurvey synth --with-2d
#: --with-photometry``), which the pipeline decodes for the stripes/photometry modalities.
PRODUCT_COLUMNS = ("stripes_uri", "cutout_uri")


@dataclass(frozen=True)
class DataSpec:
    manifest: str
    labels: str = "stellar8"  # class3 | stellar8 | fgk (the label set; regression: who is in)
    task: str = "classify"
    split_seed: int = 0
    balance_to: int | None = None
    min_snr: float | None = None
    snr_column: str = "snr_i"

    def __post_init__(self):
        if self.labels not in LABEL_SETS:
            raise ValueError(f"labels must be one of {sorted(LABEL_SETS)}, not {self.labels!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")


@dataclass
class TrainingTables:
    """Per-split manifest rows (``label`` int64 or ``target`` float32 [k]) and context."""

    splits: dict[str, pa.Table]
    label_names: list[str]  # classes, or target names for regression
    target_normalisation: dict[str, list[float]] | None
    excluded: int  # rows without a label / target or below the S/N cut
    counts: dict[str, dict[str, int]]  # split -> class -> rows (after balancing)


def read_manifest_table(uri: str) -> pa.Table:
    fs, path = fsspec.core.url_to_fs(uri)
    return pq.read_table(path, filesystem=fs)


def _target_columns(table: pa.Table, task: str) -> tuple[list[str], np.ndarray]:
    names, values = [], []
    for name in TARGETS[task]:
        column = name if name in table.column_names else f"true_{name}"
        if column not in table.column_names:
            raise ValueError(f"task {task} needs a {name!r} (or true_{name}) manifest column")
        names.append(name)
        values.append(table.column(column).to_numpy(zero_copy_only=False).astype(np.float64))
    return names, np.stack(values, axis=1)


def training_tables(spec: DataSpec) -> TrainingTables:
    table = read_manifest_table(spec.manifest)
    n_total = table.num_rows
    classes = table.column("class").to_pylist()
    subclasses = table.column("subclass").to_pylist()
    label_names = list(LABEL_SETS[spec.labels])
    label_str = [label_of(spec.labels, c, s) for c, s in zip(classes, subclasses, strict=True)]
    keep = np.array([x is not None for x in label_str])
    if spec.min_snr is not None:
        snr = table.column(spec.snr_column).to_numpy(zero_copy_only=False).astype(float)
        keep &= np.nan_to_num(snr, nan=-np.inf) > spec.min_snr
    targets = None
    if spec.task != "classify":
        label_names, targets = _target_columns(table, spec.task)
        keep &= np.isfinite(targets).all(axis=1)
    index = np.flatnonzero(keep)
    table = table.take(pa.array(index))
    label_str = [label_str[i] for i in index]
    columns = {
        k: table.column(k)
        for k in (*KEEP, *PRODUCT_COLUMNS, spec.snr_column)
        if k in table.column_names
    }
    out = pa.table(columns)
    out = out.append_column("label_name", pa.array(label_str, pa.string()))
    if targets is None:
        lookup = {name: i for i, name in enumerate(label_names)}
        out = out.append_column("label", pa.array([lookup[x] for x in label_str], pa.int64()))
    splits = assign_splits(object_ids(out), spec.split_seed)
    normalisation = None
    if targets is not None:
        targets = targets[index]
        train = targets[splits == "train"]
        mean = train.mean(axis=0) if len(train) else np.zeros(targets.shape[1])
        std = train.std(axis=0) if len(train) else np.ones(targets.shape[1])
        std = np.where(std > 0, std, 1.0)
        normalisation = {"mean": mean.tolist(), "std": std.tolist()}
        from raysurvey.data.pipeline import tensor_array

        out = out.append_column("target", tensor_array(targets.astype(np.float32)))
    per_split, counts = {}, {}
    for name in SPLITS:
        rows = np.flatnonzero(splits == name)
        if name == "train" and spec.balance_to:
            labels = np.asarray([label_str[i] for i in rows])
            rows = rows[balance_by_replication(labels, spec.balance_to, spec.split_seed)]
        part = out.take(pa.array(rows, pa.int64()))
        per_split[name] = part
        values, n = np.unique(
            part.column("label_name").to_numpy(zero_copy_only=False), return_counts=True
        )
        counts[name] = {str(v): int(c) for v, c in zip(values, n, strict=True)}
    return TrainingTables(
        splits=per_split,
        label_names=label_names,
        target_normalisation=normalisation,
        excluded=n_total - len(index),
        counts=counts,
    )
