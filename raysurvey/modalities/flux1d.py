"""``flux1d``: the 1D CNN input of the audio-fusion paper.

The first 3700 grid pixels (~3700-8672 A), min-max normalised per spectrum as the
paper's eq. 1, ``(f - f_min) / (f_max - f_min)``; ``norm="zscore"`` instead gives
zero mean and unit variance; ``norm="robust"`` is eq. 1 with the 1st and 99th
percentiles in place of the extremes, clipped to [-0.25, 1.25], so that one spike
(a cosmic ray, a sky residual) or one dead pixel cannot squash the whole spectrum
into a flat line, as min-max does to real low-S/N spectra (docs/real-data.md);
``norm="continuum"`` divides by a smooth upper envelope, for stellar types read
from lines rather than from the continuum slope.
NaN-safe: gaps are interpolated first, a row with no finite pixel becomes zeros.
``median_filter=9`` reproduces the authors' code, which smooths the normalised vector
before every branch; the default follows the paper.
"""

from __future__ import annotations

import numpy as np

from raysurvey.modalities.batch import FLUX, fill_gaps
from raysurvey.modalities.registry import register

FLUX1D_PIXELS = 3700


ROBUST_PERCENTILES = (1.0, 99.0)
ROBUST_CLIP = (-0.25, 1.25)
NORMS = ("minmax", "zscore", "robust", "continuum")
#: Continuum estimate: medians of 10-pixel blocks, then the 80th percentile over 25
#: blocks (~250 pixels, 580 A at 5000 A), interpolated back to every pixel.
CONTINUUM_BLOCK, CONTINUUM_WINDOW, CONTINUUM_PERCENTILE = 10, 25, 80.0
CONTINUUM_CLIP = (0.0, 1.5)


def continuum_normalise(flux: np.ndarray) -> np.ndarray:
    """Each row divided by a smooth continuum, clipped to [0, 1.5].

    Why: stellar types are read from lines (Balmer, metals, TiO bands); a continuum
    slope also carries Teff, but on real files it is bent by reddening and flux
    calibration (LAMOST DR1-DR5 relative fluxes), which shifted every type one step
    cooler (docs/real-data.md). The continuum is an upper envelope of block medians
    (``CONTINUUM_*``), so absorption lines stay below 1 and emission above it.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    x = fill_gaps(np.atleast_2d(np.asarray(flux, dtype=np.float32))).astype(np.float64)
    batch, n = x.shape
    n_blocks = n // CONTINUUM_BLOCK
    blocks = np.median(
        x[:, : n_blocks * CONTINUUM_BLOCK].reshape(batch, n_blocks, CONTINUUM_BLOCK), axis=2
    )
    half = CONTINUUM_WINDOW // 2
    padded = np.pad(blocks, ((0, 0), (half, half)), mode="edge")
    windows = sliding_window_view(padded, CONTINUUM_WINDOW, axis=1)
    envelope = np.percentile(windows, CONTINUUM_PERCENTILE, axis=2)
    centres = (np.arange(n_blocks) + 0.5) * CONTINUUM_BLOCK
    pixels = np.arange(n)
    continuum = np.stack([np.interp(pixels, centres, row) for row in envelope])
    out = np.divide(x, continuum, out=np.zeros_like(x), where=continuum > 0)
    return np.clip(out, *CONTINUUM_CLIP).astype(np.float32)


def robust_minmax(flux: np.ndarray) -> np.ndarray:
    """Eq. 1 between the 1st and 99th percentiles of each row, clipped (see module)."""
    x = fill_gaps(np.atleast_2d(np.asarray(flux, dtype=np.float32))).astype(np.float64)
    lo, hi = np.percentile(x, ROBUST_PERCENTILES, axis=1, keepdims=True)
    span = hi - lo
    out = np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)
    return np.clip(out, *ROBUST_CLIP).astype(np.float32)


def zscore(flux: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per row (a constant row becomes zeros)."""
    flux = fill_gaps(np.asarray(flux, dtype=np.float32)).astype(np.float64)
    centred = flux - flux.mean(axis=1, keepdims=True)
    std = flux.std(axis=1, keepdims=True)
    out = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    return out.astype(np.float32)


@register(
    "flux1d", description="first 3700 grid pixels, min-max (z-score, robust), float32 [B, 3700]"
)
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
    elif norm == "robust":
        out = robust_minmax(flux)
    elif norm == "continuum":
        out = continuum_normalise(flux)
    else:
        raise ValueError(f"flux1d norm must be one of {NORMS}, not {norm!r}")
    if median_filter and median_filter > 1:
        out = apply_median(out, median_filter)
    return out.astype(np.float32, copy=False)
