"""The common grid: hand-computed resampling cases, masks, good fraction, S/N."""

from __future__ import annotations

import numpy as np
import pytest

from raysurvey.io import Spectrum, read_spectrum
from raysurvey.io.examples import lamost_image
from raysurvey.spectra import DLOGLAM, LOGLAM0, grid_wavelength, rebin_weights, to_grid


def make(
    loglam: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None, mask=None
) -> Spectrum:
    n = loglam.size
    ivar = np.ones(n, np.float32) if ivar is None else ivar.astype(np.float32)
    mask = np.zeros(n, bool) if mask is None else mask
    return Spectrum(10.0**loglam, flux.astype(np.float32), ivar, mask, {})


def test_grid_definition() -> None:
    wave = grid_wavelength()
    assert wave.size == 3700
    assert wave[0] == pytest.approx(10**3.5682)
    assert wave[-1] == pytest.approx(10 ** (3.5682 + 3699e-4))
    assert grid_wavelength(5000)[-1] > 10_000  # longer grid keeps the SDSS red end


def test_aligned_log_linear_spectrum_is_copied_exactly() -> None:
    """Input pixels on the grid itself: flux and ivar come through unchanged."""
    i = np.arange(-10, 3800)
    loglam = LOGLAM0 + DLOGLAM * i
    flux = 3.0 + 0.001 * i  # linear in pixel index
    ivar = np.full(i.size, 4.0)
    grid = to_grid(make(loglam, flux, ivar))
    np.testing.assert_allclose(grid.flux, 3.0 + 0.001 * np.arange(3700), rtol=1e-6)
    np.testing.assert_allclose(grid.ivar, 4.0, rtol=1e-6)
    assert grid.good_fraction == 1.0


def test_half_pixel_offset_averages_neighbours_and_doubles_ivar() -> None:
    """Each grid pixel overlaps two input pixels by half: mean flux, ivar x2."""
    i = np.arange(-5, 3710)
    loglam = LOGLAM0 + DLOGLAM * (i + 0.5)
    flux = 2.0 * i + 1.0
    grid = to_grid(make(loglam, flux, np.full(i.size, 1.0)))
    # grid pixel j overlaps inputs j-1 (centre j-0.5) and j (centre j+0.5) half each
    j = np.arange(3700)
    expected = 0.5 * ((2.0 * (j - 1) + 1.0) + (2.0 * j + 1.0))
    np.testing.assert_allclose(grid.flux, expected, rtol=1e-6)
    np.testing.assert_allclose(grid.ivar, 2.0, rtol=1e-6)


def test_inverse_variance_weighting() -> None:
    """Two half-overlapping inputs with ivar 1 and 3: weights 1:3."""
    i = np.arange(-5, 3710)
    loglam = LOGLAM0 + DLOGLAM * (i + 0.5)
    flux = np.where(i % 2 == 0, 10.0, 20.0)
    ivar = np.where(i % 2 == 0, 1.0, 3.0)
    grid = to_grid(make(loglam, flux, ivar))
    # grid pixel 1 overlaps input 0 (flux 10, ivar 1) and input 1 (flux 20, ivar 3)
    assert grid.flux[1] == pytest.approx((0.5 * 1 * 10 + 0.5 * 3 * 20) / (0.5 * 1 + 0.5 * 3))
    # ivar = S^2 / sum(l^2 ivar) = 2^2 / (0.25 * 4) = 4
    assert grid.ivar[1] == pytest.approx(4.0)


def test_masked_and_non_finite_pixels_get_zero_weight() -> None:
    i = np.arange(0, 3700)
    loglam = LOGLAM0 + DLOGLAM * i
    flux = np.ones(i.size)
    flux[50] = 1e6  # masked outlier must not leak
    flux[60] = np.nan
    mask = np.zeros(i.size, bool)
    mask[50] = True
    grid = to_grid(make(loglam, flux, mask=mask))
    assert grid.ivar[50] == 0 and grid.mask[50] and np.isnan(grid.flux[50])
    assert grid.ivar[60] == 0 and grid.mask[60]
    assert np.nanmax(grid.flux) == pytest.approx(1.0)


def test_good_fraction_is_exact_on_a_constructed_case() -> None:
    """Coverage of grid pixels 100..2099 with 37 masked inside: (2000 - 37) / 3700."""
    i = np.arange(100, 2100)
    mask = np.zeros(i.size, bool)
    mask[np.arange(5, 5 + 37 * 3, 3)] = True
    grid = to_grid(make(LOGLAM0 + DLOGLAM * i, np.ones(i.size), mask=mask))
    assert grid.good_fraction == (2000 - 37) / 3700
    assert int(np.count_nonzero(~grid.mask)) == 2000 - 37


@pytest.mark.parametrize("fill", ["nan", "zero", "interp"])
def test_fill_modes(fill: str) -> None:
    i = np.arange(0, 3700)
    flux = i.astype(float)
    mask = np.zeros(i.size, bool)
    mask[10] = True
    grid = to_grid(make(LOGLAM0 + DLOGLAM * i, flux, mask=mask), fill=fill)
    expected = {"nan": np.nan, "zero": 0.0, "interp": 10.0}[fill]
    np.testing.assert_equal(grid.flux[10], np.float32(expected))
    assert grid.mask[10] and grid.ivar[10] == 0


def test_snr_is_median_of_flux_times_sqrt_ivar() -> None:
    i = np.arange(0, 3700)
    flux = np.full(i.size, 10.0)
    ivar = np.where(i < 1850, 1.0, 4.0)  # S/N 10 for half, 20 for the other half
    grid = to_grid(make(LOGLAM0 + DLOGLAM * i, flux, ivar))
    assert grid.snr == pytest.approx(15.0)


def test_flux_density_is_conserved_when_input_pixels_are_wider() -> None:
    """Coarser input (2 grid pixels each): a constant stays constant."""
    i = np.arange(0, 1900)
    grid = to_grid(make(LOGLAM0 + 2 * DLOGLAM * i + 0.5 * DLOGLAM, np.full(i.size, 7.0)))
    np.testing.assert_allclose(grid.flux[~grid.mask], 7.0, rtol=1e-6)
    assert grid.good_fraction == 1.0


def test_rebin_weights_sum_to_input_width() -> None:
    loglam = LOGLAM0 + DLOGLAM * (np.arange(500) * 1.37 + 0.21)
    rows, cols, length = rebin_weights(loglam, 3700)
    per_input = np.bincount(rows, length, minlength=500)
    np.testing.assert_allclose(per_input[1:-1], 1.37, rtol=1e-9)


def test_real_layout_on_grid() -> None:
    spectrum = read_spectrum(lamost_image().data)
    grid = to_grid(spectrum)
    assert grid.flux.shape == (3700,) and grid.flux.dtype == np.float32
    # LAMOST (3690-9036 A) covers the whole default grid except its 3 and-masked pixels
    assert grid.good_fraction == pytest.approx(3697 / 3700)
