"""The common wavelength grid every survey is resampled onto."""

from raysurvey.spectra.grid import (
    DLOGLAM,
    LOGLAM0,
    MIN_COVERAGE,
    N_PIX,
    GridSpectrum,
    grid_loglam,
    grid_wavelength,
    rebin_weights,
    to_grid,
)

__all__ = [
    "DLOGLAM",
    "LOGLAM0",
    "MIN_COVERAGE",
    "N_PIX",
    "GridSpectrum",
    "grid_loglam",
    "grid_wavelength",
    "rebin_weights",
    "to_grid",
]
