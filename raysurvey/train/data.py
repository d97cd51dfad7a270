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
    """Where the rows come from and which are used.

    ``manifest``: one manifest URI or several; ``manifest_weights`` (same length):
    each manifest's sampling weight in the training split (2.0: its rows twice,
    0.5: a random half), e.g. synthetic releases plus a survey's own labelled
    spectra (``raysurvey manifest``). Labels come from the truth columns where a row
    has them (synthetic releases), else from the pipeline columns (real files).
    """

    manifest: str | tuple[str, ...]
    manifest_weights: tuple[float, ...] | None = None
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
    #: where the labels came from: "truth" (synthetic), "pipeline" (real files), "mixed"
    label_source: str = "truth"


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


def manifest_list(manifest: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """One or several manifest URIs as a tuple."""
    return (manifest,) if isinstance(manifest, str) else tuple(manifest)


def parse_manifest_arg(text: str) -> tuple[str, float]:
    """``URI`` or ``URI@WEIGHT`` (the sampling weight of ``jobs/train.py --manifest``)."""
    uri, sep, weight = text.rpartition("@")
    if sep and uri and "/" not in weight:
        try:
            value = float(weight)
        except ValueError:
            return text, 1.0
        if value < 0:
            raise ValueError(f"manifest weight must be >= 0, got {text!r}")
        return uri, value
    return text, 1.0


def _label_columns(table: pa.Table) -> tuple[list, list, np.ndarray]:
    """Class and subclass per row: truth where the row has it, else the pipeline's;
    and whether each row's label is truth."""
    classes = table.column("class").to_pylist()
    subclasses = table.column("subclass").to_pylist()
    from_truth = np.zeros(table.num_rows, dtype=bool)
    if "true_class" in table.column_names:
        true_class = table.column("true_class").to_pylist()
        true_sub = table.column("true_subclass").to_pylist()
        for i, truth in enumerate(true_class):
            if truth is not None:
                classes[i], subclasses[i] = truth, true_sub[i]
                from_truth[i] = True
    return classes, subclasses, from_truth


def read_manifests(manifests: tuple[str, ...]) -> tuple[pa.Table, np.ndarray]:
    """The manifests concatenated (columns they share), and each row's manifest index."""
    tables = [read_manifest_table(uri) for uri in manifests]
    for uri, table in zip(manifests, tables, strict=True):
        missing = [c for c in ("uri", "survey", "class", "subclass") if c not in table.column_names]
        if missing:
            raise ValueError(f"{uri}: not a manifest (no column {', '.join(missing)})")
    types: dict[str, pa.DataType] = {}
    for table in tables:  # every column of any manifest; the first one's type wins
        for field in table.schema:
            if field.name not in types and not pa.types.is_null(field.type):
                types[field.name] = field.type
    for table in tables:
        for field in table.schema:
            types.setdefault(field.name, pa.string())
    parts = []
    for table in tables:
        columns = [
            table.column(name).cast(kind)
            if name in table.column_names
            else pa.nulls(table.num_rows, kind)
            for name, kind in types.items()
        ]
        parts.append(pa.table(columns, names=list(types)))
    source = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)])
    return pa.concat_tables(parts), source


def _weighted(rows: np.ndarray, source: np.ndarray, weights, seed: int) -> np.ndarray:
    """Training rows resampled by their manifest's weight (whole copies + a random part)."""
    rng = np.random.default_rng([seed, 17])
    out = []
    for i, weight in enumerate(weights):
        mine = rows[source[rows] == i]
        whole, part = int(weight), weight - int(weight)
        out.extend([mine] * whole)
        if part > 0 and mine.size:
            out.append(rng.choice(mine, int(round(part * mine.size)), replace=False))
    return np.sort(np.concatenate(out)) if out else rows[:0]


def training_tables(spec: DataSpec) -> TrainingTables:
    manifests = manifest_list(spec.manifest)
    weights = spec.manifest_weights or (1.0,) * len(manifests)
    if len(weights) != len(manifests):
        raise ValueError(f"{len(weights)} manifest weights for {len(manifests)} manifests")
    table, source = read_manifests(manifests)
    n_total = table.num_rows
    classes, subclasses, from_truth = _label_columns(table)
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
    source = source[index]
    from_truth = from_truth[index]
    label_source = "truth" if from_truth.all() else "pipeline" if not from_truth.any() else "mixed"
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
        if name == "train" and any(w != 1.0 for w in weights):
            rows = _weighted(rows, source, weights, spec.split_seed)
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
        label_source=label_source,
    )
