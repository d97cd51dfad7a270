"""Line-plot images of spectra: Spectromer's Simple and Overlap, the audio paper's line512.

All return uint8 RGB [B, 224, 224, 3] and are drawn by the vectorised rasteriser in
``raster.py``, reproducing the authors' matplotlib figures (DESIGN.md, "What the
published code actually does"):

- ``simple``: flux against wavelength, one line #1f77b4 of 0.5 pt on a 2.24 in
  figure at 100 dpi, white background, no axes, matplotlib's default 5 % margins
  around the data (x and y autoscaled per spectrum).
- ``overlap``: the spectrum cut into three equal index chunks (``np.array_split``),
  each chunk's wavelength rescaled to [0, 1], drawn on one shared axis in red,
  green (#008000) and blue at alpha 0.5, in that order: blended coloured lines.
- ``line512``: the audio-fusion image, the EPSANet branch input: the min-max
  normalised first 3700 pixels (median filter 9 as in the authors' code) drawn
  against pixel index as a black 1.5 pt line on a 16 in figure at 32 dpi
  (512 x 512), grey, resized to 224 with antialiased bilinear interpolation and
  copied to three channels. The authors' figure hides the axes; we draw it with
  the same full-figure axes and margins as the Spectromer plots.

Gaps (NaN) are filled first by interpolation (``batch.fill_gaps``).
"""

from __future__ import annotations

import numpy as np

from raysurvey.modalities.batch import FLUX, fill_gaps
from raysurvey.modalities.raster import (
    autoscale,
    blend_strokes,
    data_to_pixels,
    paint,
    polyline_coverage,
)
from raysurvey.modalities.registry import register
from raysurvey.spectra.grid import grid_wavelength

IMAGE_SIZE = 224
DPI = 100
SIMPLE_COLOUR = (0x1F, 0x77, 0xB4)
SIMPLE_WIDTH_PT = 0.5
OVERLAP_COLOURS = ((255, 0, 0), (0, 128, 0), (0, 0, 255))
OVERLAP_ALPHA = 0.5
LINE512_SIZE = 512
LINE512_DPI = 32
LINE512_WIDTH_PT = 1.5  # matplotlib's default lines.linewidth
LINE512_PIXELS = 3700


def _points_to_pixels(width_pt: float, dpi: int) -> float:
    return width_pt * dpi / 72.0


def _x_pixels(x: np.ndarray, size: int) -> np.ndarray:
    lo, hi = autoscale(x[None, :])
    return data_to_pixels(x, float(lo[0]), float(hi[0]), size, flip=False)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@register("simple", description="Spectromer 'Simple' line plot, uint8 [B, 224, 224, 3]")
def simple(batch: dict[str, np.ndarray], size: int = IMAGE_SIZE) -> np.ndarray:
    """Flux against wavelength as a thin blue line on white, no axes."""
    flux = fill_gaps(batch[FLUX])
    wavelength = grid_wavelength(flux.shape[1])
    lo, hi = autoscale(flux)
    coverage = polyline_coverage(
        _x_pixels(wavelength, size),
        data_to_pixels(flux, lo, hi, size, flip=True),
        size,
        size,
        _points_to_pixels(SIMPLE_WIDTH_PT, DPI),
    )
    return paint(coverage, SIMPLE_COLOUR)


@register("overlap", description="Spectromer 'Overlap': thirds as R, G, B lines, uint8")
def overlap(batch: dict[str, np.ndarray], size: int = IMAGE_SIZE) -> np.ndarray:
    """Three equal index chunks drawn over one shared, rescaled wavelength axis."""
    flux = fill_gaps(batch[FLUX])
    wavelength = grid_wavelength(flux.shape[1])
    chunks = np.array_split(np.arange(flux.shape[1]), 3)
    lo, hi = autoscale(flux)  # the shared y axis spans every chunk
    x_lo, x_hi = autoscale(np.array([[0.0, 1.0]]))
    coverages = []
    for chunk in chunks:
        w = wavelength[chunk]
        x = (w - w.min()) / (w.max() - w.min())
        coverages.append(
            polyline_coverage(
                data_to_pixels(x, float(x_lo[0]), float(x_hi[0]), size, flip=False),
                data_to_pixels(flux[:, chunk], lo, hi, size, flip=True),
                size,
                size,
                _points_to_pixels(SIMPLE_WIDTH_PT, DPI),
            ).reshape(-1)
        )
    return blend_strokes(coverages, OVERLAP_COLOURS, OVERLAP_ALPHA, (flux.shape[0], size, size))


@register("line512", description="audio-fusion black line plot, 512 px resized to 224, uint8")
def line512(
    batch: dict[str, np.ndarray], median_filter: int = 9, size: int = IMAGE_SIZE
) -> np.ndarray:
    """The EPSANet branch input of the audio-fusion paper (grey, three equal channels)."""
    import torch
    import torch.nn.functional as F

    from raysurvey.modalities.audio import median_filter as apply_median
    from raysurvey.modalities.audio import minmax_normalise

    flux = minmax_normalise(batch[FLUX][:, :LINE512_PIXELS])
    if median_filter and median_filter > 1:
        flux = apply_median(flux, median_filter)
    index = np.arange(flux.shape[1], dtype=np.float64)
    lo, hi = autoscale(flux)
    coverage = polyline_coverage(
        _x_pixels(index, LINE512_SIZE),
        data_to_pixels(flux, lo, hi, LINE512_SIZE, flip=True),
        LINE512_SIZE,
        LINE512_SIZE,
        _points_to_pixels(LINE512_WIDTH_PT, LINE512_DPI),
    )
    grey = 255.0 * (1.0 - coverage)  # black line on white, float for the resize
    with torch.inference_mode():
        small = F.interpolate(
            torch.from_numpy(grey)[:, None],
            size=(size, size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[:, 0].numpy()
    return np.repeat(_to_uint8(small)[..., None], 3, axis=-1)
