"""Materialise a modality dataset to Parquet shards, error rows' modalities as nulls.

In the stream, tensor columns of error rows hold zeros (Ray's numpy batches cannot
hold nulls); on disk they become nulls so nobody trains on them by accident. The
modality columns are written with Arrow's canonical ``fixed_shape_tensor`` type,
which pyarrow, DuckDB and Ray read without raysurvey installed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from raysurvey.data.decode import STATUS_OK
from raysurvey.data.pipeline import column_numpy


def nullable_tensor(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """[B, ...] numpy as a ``fixed_shape_tensor`` array, null where not ``valid``."""
    shape = values.shape[1:]
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    storage = pa.FixedSizeListArray.from_arrays(
        flat, int(np.prod(shape)), mask=pa.array(~np.asarray(valid, dtype=bool))
    )
    tensor_type = pa.fixed_shape_tensor(flat.type, shape)
    return pa.ExtensionArray.from_storage(tensor_type, storage)


def nullify_errors(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Replace the tensor ``columns`` by nullable ones (null where status != ok)."""
    valid = np.asarray(table.column("status").to_pylist()) == STATUS_OK
    for name in columns:
        index = table.column_names.index(name)
        table = table.set_column(index, name, nullable_tensor(column_numpy(table, name), valid))
    return table
