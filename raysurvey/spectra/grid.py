"""The common wavelength grid and inverse-variance weighted resampling onto it.

Grid: ``log10(lambda) = 3.5682 + 1e-4 * i`` (3700 A upward in steps of ~69 km/s), 3700
pixels by default (to ~8672 A, the papers' 1D input); pass a larger ``n_pix`` to keep
the SDSS red end (5000 pixels reach ~10,300 A).

Why flux-conserving rebinning rather than interpolation: LAMOST and SDSS pixels
have the grid's own width (1e-4 dex) but sit at arbitrary sub-pixel offsets, and
LAMOST DR2-DR8 wavelengths vary per file. Interpolation would let one noisy or
masked pixel leak into two outputs with no error propagation. Here each output
pixel is the inverse-variance weighted mean of the input pixels that overlap it,
each weighted by its overlap length times its ivar; the output ivar follows from
propagating the input variances through those same weights, and masked or
non-finite pixels get weight zero. An output pixel less than half covered by good
input pixels is masked (ivar 0) and its flux filled as ``fill`` says: a masked
input pixel then masks the grid pixel it lands on instead of hiding behind a
float-rounding sliver of its neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from raysurvey.io.spectrum import Spectrum

LOGLAM0 = 3.5682
DLOGLAM = 1e-4
N_PIX = 3700
#: Fraction of a grid pixel that good input pixels must cover for it to count as good.
MIN_COVERAGE = 0.5

Fill = Literal["nan", "zero", "interp"]


def grid_loglam(n_pix: int = N_PIX) -> np.ndarray:
    """log10 wavelength of the grid pixel centres."""
    return LOGLAM0 + DLOGLAM * np.arange(n_pix)


def grid_wavelength(n_pix: int = N_PIX) -> np.ndarray:
    """Wavelength in Angstrom of the grid pixel centres."""
    return 10.0 ** grid_loglam(n_pix)


@dataclass(frozen=True)
class GridSpectrum:
    """A spectrum on the common grid.

    Attributes
    ----------
    flux, ivar : numpy.ndarray
        float32 [n_pix]; ivar 0 where no good input pixel contributes.
    mask : numpy.ndarray
        bool [n_pix], True where the pixel carries no information.
    good_fraction : float
        Fraction of grid pixels with information (exact: count / n_pix).
    snr : float
        Median of flux * sqrt(ivar) over good pixels (0.0 when none).
    """

    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    good_fraction: float
    snr: float

    @property
    def wavelength(self) -> np.ndarray:
        return grid_wavelength(self.flux.shape[0])


def _pixel_edges(centres: np.ndarray) -> np.ndarray:
    """Edges midway between centres, extrapolated half a step at either end."""
    mid = 0.5 * (centres[1:] + centres[:-1])
    first = centres[0] - (mid[0] - centres[0])
    last = centres[-1] + (centres[-1] - mid[-1])
    return np.concatenate(([first], mid, [last]))


def rebin_weights(loglam_in: np.ndarray, n_pix: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlaps of input pixels with grid pixels as a sparse (input, output, length) list.

    Lengths are in units of one grid pixel; every input pixel contributes to the
    grid pixels its extent covers, whatever the ratio of pixel widths.
    """
    edges = (_pixel_edges(loglam_in) - LOGLAM0) / DLOGLAM + 0.5  # grid pixel j spans [j, j+1)
    lo, hi = edges[:-1], edges[1:]
    span = int(np.ceil(np.max(hi - lo))) + 1
    first = np.floor(lo).astype(np.int64)
    rows, cols, lengths = [], [], []
    index = np.arange(lo.size)
    for k in range(span):
        j = first + k
        overlap = np.minimum(hi, j + 1) - np.maximum(lo, j)
        keep = (overlap > 0) & (j >= 0) & (j < n_pix)
        rows.append(index[keep])
        cols.append(j[keep])
        lengths.append(overlap[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(lengths)


def to_grid(
    spectrum: Spectrum,
    n_pix: int = N_PIX,
    fill: Fill = "nan",
    min_coverage: float = MIN_COVERAGE,
) -> GridSpectrum:
    """Resample a ``Spectrum`` onto the common log-linear grid.

    Parameters
    ----------
    spectrum : Spectrum
        Native-pixel spectrum from ``raysurvey.io.read_spectrum``.
    n_pix : int
        Grid length (3700 reaches 8672 A).
    fill : {"nan", "zero", "interp"}
        Flux written where the grid pixel has no good input: NaN (default: nothing
        is invented; downstream modalities are NaN-safe), zero, or linear
        interpolation between good neighbours (constant beyond the ends). The mask
        and zero ivar mark those pixels whatever the fill.
    min_coverage : float
        Fraction of a grid pixel that good input must cover for it to be good.

    Returns
    -------
    GridSpectrum
    """
    loglam = np.log10(spectrum.wavelength)
    rows, cols, length = rebin_weights(loglam, n_pix)
    flux_in = np.asarray(spectrum.flux, dtype=np.float64)
    ivar_in = np.where(spectrum.mask, 0.0, np.asarray(spectrum.ivar, dtype=np.float64))
    good_in = (ivar_in > 0) & np.isfinite(flux_in)
    ivar_in = np.where(good_in, ivar_in, 0.0)
    flux_in = np.where(good_in, flux_in, 0.0)

    weight = length * ivar_in[rows]  # w_ij = overlap * ivar_i
    sum_w = np.bincount(cols, weight, minlength=n_pix)
    sum_wf = np.bincount(cols, weight * flux_in[rows], minlength=n_pix)
    # var(out) = sum (w_ij / S)^2 / ivar_i = sum(overlap^2 * ivar_i) / S^2
    sum_w2_over_ivar = np.bincount(cols, length**2 * ivar_in[rows], minlength=n_pix)
    coverage = np.bincount(cols, length * good_in[rows], minlength=n_pix)

    good = (sum_w > 0) & (coverage >= min_coverage)
    flux = np.full(n_pix, np.nan)
    ivar = np.zeros(n_pix)
    flux[good] = sum_wf[good] / sum_w[good]
    ivar[good] = sum_w[good] ** 2 / sum_w2_over_ivar[good]
    flux = _fill(flux, good, fill)

    n_good = int(np.count_nonzero(good))
    snr = float(np.median(flux[good] * np.sqrt(ivar[good]))) if n_good else 0.0
    return GridSpectrum(
        flux=flux.astype(np.float32),
        ivar=ivar.astype(np.float32),
        mask=~good,
        good_fraction=n_good / n_pix,
        snr=snr,
    )


def _fill(flux: np.ndarray, good: np.ndarray, fill: Fill) -> np.ndarray:
    if fill == "nan" or good.all():
        return flux
    if fill == "zero":
        return np.where(good, flux, 0.0)
    if fill == "interp":
        if not good.any():
            return np.zeros_like(flux)
        x = np.arange(flux.size)
        return np.interp(x, x[good], flux[good])
    raise ValueError(f"fill must be 'nan', 'zero' or 'interp', not {fill!r}")
