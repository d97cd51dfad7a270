"""``flux1d``: the 1D CNN input of the audio-fusion paper.

The first 3700 grid pixels (~3700-8672 A), min-max normalised per spectrum as the
paper's eq. 1, ``(f - f_min) / (f_max - f_min)``; ``norm="zscore"`` instead gives
zero mean and unit variance. NaN-safe: gaps are interpolated first, a row with no
finite pixel becomes zeros. ``median_filter=9`` reproduces the authors' code, which
smooths the normalised vector before every branch; the default follows the paper.
"""

from __future__ import annotations

import numpy as np

from raysurvey.modalities.batch import FLUX, fill_gaps
from raysurvey.modalities.registry import register

FLUX1D_PIXELS = 3700


def zscore(flux: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per row (a constant row becomes zeros)."""
    flux = fill_gaps(np.asarray(flux, dtype=np.float32)).astype(np.float64)
    centred = flux - flux.mean(axis=1, keepdims=True)
    std = flux.std(axis=1, keepdims=True)
    out = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    return out.astype(np.float32)


@register("flux1d", description="first 3700 grid pixels, min-max (or z-score), float32 [B, 3700]")
def flux1d(
    batch: dict[str, np.ndarray],
    norm: str = "minmax",
    median_filter: int = 0,
    n_pix: int = FLUX1D_PIXELS,
) -> np.ndarray:
    """Normalised first ``n_pix`` grid pixels, float32 [B, n_pix]."""
    from raysurvey.modalities.audio import median_filter as apply_median
    from raysurvey.modalities.audio import minmax_normalise

    flux = batch[FLUX][:, :n_pix]
    if flux.shape[1] < n_pix:
        raise ValueError(f"flux1d needs {n_pix} grid pixels, the batch has {flux.shape[1]}")
    if norm == "minmax":
        out = minmax_normalise(flux)
    elif norm == "zscore":
        out = zscore(flux)
    else:
        raise ValueError(f"flux1d norm must be 'minmax' or 'zscore', not {norm!r}")
    if median_filter and median_filter > 1:
        out = apply_median(out, median_filter)
    return out.astype(np.float32, copy=False)
