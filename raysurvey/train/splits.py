"""Deterministic 8:1:1 splits by object id, and class balancing by replication.

A spectrum's split depends only on its object id and the split seed (a hash, not a
random draw over the table), so it is the same on every worker, for every run with
that seed, and when the release grows; a different seed gives a different split, as
the papers' repeated runs do. Balancing replicates the minority classes of the
training split up to a target count (the audio-fusion paper's 6000), never the
validation or test rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)


def object_ids(table: pa.Table) -> list[str]:
    """One id per row: LAMOST ``obsid``, else SDSS ``specobjid``, else the ``uri``."""
    n = table.num_rows
    obsid = table.column("obsid").to_pylist() if "obsid" in table.column_names else [None] * n
    spec = (
        table.column("specobjid").to_pylist() if "specobjid" in table.column_names else [None] * n
    )
    uris = table.column("uri").to_pylist()
    ids = []
    for o, s, u in zip(obsid, spec, uris, strict=True):
        if o is not None:
            ids.append(f"lamost:{o}")
        elif s not in (None, ""):
            ids.append(f"sdss:{s}")
        else:
            ids.append(f"uri:{u}")
    return ids


def split_fraction(object_id: str, seed: int) -> float:
    """A uniform number in [0, 1) from the id and the seed (BLAKE2b, 64 bits)."""
    digest = hashlib.blake2b(f"{seed}:{object_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_splits(
    ids: Sequence[str], seed: int = 0, fractions: Sequence[float] = FRACTIONS
) -> np.ndarray:
    """ "train" | "val" | "test" per id, in proportions ``fractions``."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must be three numbers summing to 1, got {fractions}")
    u = np.array([split_fraction(i, seed) for i in ids])
    edges = np.cumsum(fractions)[:2]
    return np.array(SPLITS, dtype=object)[np.searchsorted(edges, u, side="right")]


def balance_by_replication(labels: np.ndarray, target: int, seed: int = 0) -> np.ndarray:
    """Row indices where each class with fewer than ``target`` rows is replicated up to
    ``target`` (whole copies, then a seeded sample for the remainder); larger classes
    are kept whole, as the audio-fusion paper does."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) >= target:
            out.append(rows)
            continue
        copies, remainder = divmod(target, len(rows))
        out.append(np.tile(rows, copies))
        out.append(np.sort(rng.choice(rows, size=remainder, replace=False)))
    return np.sort(np.concatenate(out)) if out else np.array([], dtype=np.int64)
