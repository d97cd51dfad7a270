"""The batch contract between pipeline stages: names defined once, and input coercion.

A batch is ``dict[str, np.ndarray]`` with at least ``flux`` [B, N] on the common
grid (CONVENTIONS.md). Every modality also accepts a bare float [B, N] array (or
one [N] spectrum) for convenience; it is wrapped into a batch here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Grid flux [B, N], float32; NaN where the grid pixel holds no information.
FLUX = "flux"
#: Survey name per row ("lamost" | "sdss"), used by per-survey variants.
SURVEY = "survey"

Batch = Mapping[str, np.ndarray]


def as_batch(batch: Batch | np.ndarray) -> dict[str, np.ndarray]:
    """Return ``batch`` as a dict holding a float32 [B, N] ``flux`` array."""
    if isinstance(batch, np.ndarray) or not isinstance(batch, Mapping):
        batch = {FLUX: batch}
    if FLUX not in batch:
        raise KeyError(f"batch has no {FLUX!r} column (columns: {sorted(batch)})")
    flux = np.asarray(batch[FLUX])
    if flux.dtype == object:  # a Ray batch of per-row arrays
        flux = np.stack([np.asarray(row, dtype=np.float32) for row in flux])
    if flux.ndim == 1:
        flux = flux[None, :]
    if flux.ndim != 2:
        raise ValueError(f"flux must be [B, N] (or one [N] spectrum), got shape {flux.shape}")
    out = dict(batch)
    out[FLUX] = np.asarray(flux, dtype=np.float32)
    return out


def fill_gaps(flux: np.ndarray) -> np.ndarray:
    """Replace non-finite pixels by linear interpolation between finite neighbours.

    Why: every modality must be NaN-safe, and a masked pixel should look like its
    surroundings rather than like zero flux. Beyond the first/last finite pixel the
    nearest finite value is repeated; a row with no finite pixel becomes zeros.
    Rows without gaps are returned untouched (no copy cost for clean batches).
    """
    bad = ~np.isfinite(flux)
    if not bad.any():
        return flux
    out = np.array(flux, dtype=np.float32, copy=True)
    x = np.arange(flux.shape[1])
    for row in np.flatnonzero(bad.any(axis=1)):
        good = ~bad[row]
        if good.any():
            out[row] = np.interp(x, x[good], flux[row, good])
        else:
            out[row] = 0.0
    return out
