"""Spectromer's 2D Map: each flux value one 3 x 3 block, row-major, through a colormap.

224 // 3 = 74 blocks per side (5476 values at most); from the 3700-pixel grid the
map fills exactly 50 of its 74 block rows. Unfilled blocks and the last two pixel
rows/columns hold the value 0. Variants:

- ``spectromer``: viridis between the authors' fixed vmin -1.13 and vmax 144.97
  (SDSS flux units, 1e-17 erg/s/cm^2/A), pixel-exact with their matplotlib
  ``imshow`` for the same input values: a 256-entry uint8 lookup table indexed as
  matplotlib's ``Colormap.__call__`` does (``int(norm * 256)``, clipped).
- ``per_survey`` (default): the same construction with a range per survey taken
  from the batch's ``survey`` column. SDSS keeps the Spectromer range (identical
  pixels); LAMOST fluxes (uncalibrated, tens to thousands) saturate it, so LAMOST
  uses it scaled by 34 = (-38.4, 4929): the ratio of median fluxes of LAMOST to
  SDSS spectra in our generated releases. Default because it is the published
  encoding wherever that encoding is meaningful and it keeps absolute brightness,
  which a per-spectrum normalisation throws away. Override with ``vmin``/``vmax``.
- ``normalised``: the authors' per-spectrum variant: min-max flux into R, the
  min-max normalised first and second ``np.gradient`` into G and B, each as
  ``int(255 * x)``; unfilled blocks black. Scale-free, for mixed or uncalibrated data.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from raysurvey.modalities.batch import FLUX, SURVEY, fill_gaps
from raysurvey.modalities.registry import register

IMAGE_SIZE = 224
BLOCK = 3
SPECTROMER_RANGE = (-1.13, 144.97)
LAMOST_SCALE = 34.0
SURVEY_RANGES = {
    "sdss": SPECTROMER_RANGE,
    "lamost": (SPECTROMER_RANGE[0] * LAMOST_SCALE, SPECTROMER_RANGE[1] * LAMOST_SCALE),
}
VARIANTS = ("per_survey", "spectromer", "normalised")
COLORMAP = "viridis"


@lru_cache(maxsize=8)
def colormap_lut(name: str = COLORMAP) -> np.ndarray:
    """uint8 [256, 3] lookup table of a matplotlib colormap, as ``bytes=True`` gives it."""
    import matplotlib

    cmap = matplotlib.colormaps[name].resampled(256)
    return np.ascontiguousarray(cmap(np.arange(256), bytes=True)[:, :3])


def colormap_index(values: np.ndarray, vmin, vmax) -> np.ndarray:
    """Lookup-table index of each value, as matplotlib's Normalize + Colormap compute it.

    ``(x - vmin) / (vmax - vmin) * 256`` truncated, below/above the range clipped to
    the first/last entry (viridis' under/over colours are its ends).
    """
    scaled = (np.asarray(values, dtype=np.float64) - vmin) / (vmax - vmin) * 256.0
    return np.clip(scaled, 0, 255).astype(np.int64)


def blocks_per_side(size: int = IMAGE_SIZE, block: int = BLOCK) -> int:
    return size // block


@lru_cache(maxsize=4)
def pixel_cells(size: int = IMAGE_SIZE, block: int = BLOCK) -> np.ndarray:
    """For every pixel (row-major), its block index; n * n (one past the last) on the border."""
    n = size // block
    rows = np.arange(size) // block
    cell = rows[:, None] * n + rows[None, :]
    border = (rows[:, None] >= n) | (rows[None, :] >= n)
    return np.where(border, n * n, cell).ravel()


def expand_blocks(cells: np.ndarray, fill: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """[B, n, n, 3] cells to [B, size, size, 3] pixels, the border set to ``fill``."""
    block = size // cells.shape[1]
    body = np.repeat(np.repeat(cells, block, axis=1), block, axis=2)
    out = np.empty((cells.shape[0], size, size, 3), dtype=np.uint8)
    out[:] = fill
    out[:, : body.shape[1], : body.shape[2]] = body
    return out


def _ranges(batch: dict[str, np.ndarray], variant: str, vmin, vmax) -> np.ndarray:
    rows = batch[FLUX].shape[0]
    if vmin is not None or vmax is not None:
        if vmin is None or vmax is None:
            raise ValueError("map2d: give both vmin and vmax, or neither")
        return np.tile([float(vmin), float(vmax)], (rows, 1))
    if variant == "spectromer":
        return np.tile(SPECTROMER_RANGE, (rows, 1))
    if SURVEY not in batch:
        raise ValueError(
            "map2d variant 'per_survey' needs the batch's 'survey' column (or vmin/vmax); "
            "use variant='spectromer' for the fixed SDSS range"
        )
    surveys = np.asarray(batch[SURVEY]).astype(str)
    unknown = sorted(set(surveys) - set(SURVEY_RANGES))
    if unknown:
        raise ValueError(f"map2d: no flux range for survey(s) {unknown}; give vmin/vmax")
    return np.array([SURVEY_RANGES[s] for s in surveys], dtype=np.float64)


def _normalised(flux: np.ndarray) -> np.ndarray:
    def scale(x: np.ndarray) -> np.ndarray:
        lo = x.min(axis=1, keepdims=True)
        span = x.max(axis=1, keepdims=True) - lo
        return np.divide(255.0 * (x - lo), span, out=np.zeros_like(x), where=span > 0)

    flux = flux.astype(np.float64)
    first = np.gradient(flux, axis=1)
    second = np.gradient(first, axis=1)
    n = blocks_per_side()
    m = min(flux.shape[1], n * n)
    cells = np.zeros((flux.shape[0], n * n, 3), dtype=np.uint8)
    for channel, x in enumerate((flux, first, second)):
        cells[:, :m, channel] = scale(x)[:, :m].astype(np.uint8)
    return expand_blocks(cells.reshape(-1, n, n, 3), np.zeros(3, dtype=np.uint8))


@register(
    "map2d",
    variants=VARIANTS,
    default_variant="per_survey",
    description="Spectromer 2D Map (3x3 block per flux value, viridis), uint8",
)
def map2d(
    batch: dict[str, np.ndarray],
    variant: str = "per_survey",
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """2D Map images, uint8 [B, 224, 224, 3]; see the module docstring for variants."""
    flux = fill_gaps(batch[FLUX])
    if variant == "normalised":
        return _normalised(flux)
    ranges = _ranges(batch, variant, vmin, vmax)
    n = blocks_per_side()
    values = np.zeros((flux.shape[0], n * n + 1), dtype=np.float64)  # + the border's 0
    m = min(flux.shape[1], n * n)
    values[:, :m] = flux[:, :m]
    index = colormap_index(values, ranges[:, :1], ranges[:, 1:]).astype(np.uint8)
    lut = np.zeros((256, 4), dtype=np.uint8)  # RGB + pad: one uint32 per colour
    lut[:, :3] = colormap_lut()
    packed = np.take(lut.view(np.uint32).ravel(), np.take(index, pixel_cells(), axis=1))
    rgba = packed.view(np.uint8).reshape(flux.shape[0], IMAGE_SIZE, IMAGE_SIZE, 4)
    return np.ascontiguousarray(rgba[..., :3])
