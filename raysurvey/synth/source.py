"""What a spectrum source hands the survey simulator: a rest-frame spectrum and its truth.

Two sources implement ``SpectrumSource``: the Redrock templates (real-data-derived,
``templates.py``) and a built-in physical model (``physical.py``) that needs no
files. The simulator (``observe.py``) redshifts, samples, adds noise and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: Object kinds a source can draw: the stellar8 classes, white dwarfs, galaxies, QSOs.
STAR_KINDS: tuple[str, ...] = ("O", "B", "A", "F", "G", "K", "M", "Carbon", "WD")
KINDS: tuple[str, ...] = (*STAR_KINDS, "GALAXY", "QSO")


@dataclass(frozen=True)
class RestFrameSpectrum:
    """A noiseless rest-frame spectrum on a uniform log10-wavelength grid.

    The flux is already broadened to the requested resolving power, so the simulator
    only has to shift it (a redshift is a shift in log wavelength) and average it over
    each survey pixel.

    Attributes
    ----------
    loglam0, dloglam : float
        log10 wavelength (Angstrom, vacuum, rest frame) of pixel 0 and the step.
    flux : numpy.ndarray
        float64 flux density per Angstrom, arbitrary units, positive.
    kind : str
        One of ``KINDS``.
    subclass : str or None
        Truth subclass in the survey vocabulary before survey-specific spelling:
        "G5", "B2", "O7", "M3", "Carbon", "WD", "STARFORMING", "BROADLINE", or None.
    teff, logg, feh : float or None
        Stellar parameters (K, dex, dex); None for galaxies and QSOs.
    """

    loglam0: float
    dloglam: float
    flux: np.ndarray
    kind: str
    subclass: str | None
    teff: float | None = None
    logg: float | None = None
    feh: float | None = None

    @property
    def loglam(self) -> np.ndarray:
        return self.loglam0 + self.dloglam * np.arange(self.flux.size)


class SpectrumSource(Protocol):
    """Draws rest-frame spectra of a given kind."""

    name: str

    def kinds(self) -> tuple[str, ...]:
        """The kinds this source can draw."""
        ...

    def draw(self, kind: str, rng: np.random.Generator, resolution: float) -> RestFrameSpectrum:
        """One random object of ``kind``, broadened to resolving power ``resolution``.

        Must cover at least 3000-10500 A rest frame for stars and 2000-9000 A for
        galaxies and QSOs (the simulator redshifts them into the survey range), and be
        deterministic given ``rng``'s state.
        """
        ...


def gaussian_broaden(flux: np.ndarray, dloglam: float, resolution: float) -> np.ndarray:
    """Convolve a uniform-log-grid spectrum with a Gaussian LSF of resolving power R.

    FWHM = lambda / R is a constant width in log wavelength, 1 / (R ln 10) dex, so one
    kernel serves the whole spectrum. FFT convolution with reflected edges.
    """
    sigma_pix = 1.0 / (resolution * np.log(10.0)) / 2.3548 / dloglam
    if sigma_pix < 0.3:
        return flux
    half = int(np.ceil(4 * sigma_pix))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sigma_pix) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(flux, half, mode="reflect")
    n = padded.size + kernel.size - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(padded, size) * np.fft.rfft(kernel, size), size)
    return out[2 * half : 2 * half + flux.size]
