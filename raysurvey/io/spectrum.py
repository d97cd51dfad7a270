"""The ``Spectrum`` record every reader returns, whatever the survey layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Metadata keys every reader fills (value ``None`` when the file does not carry it).
META_KEYS: tuple[str, ...] = (
    "survey",
    "data_release",
    "layout",
    "obsid",
    "specobjid",
    "ra",
    "dec",
    "class",
    "subclass",
    "z",
    "z_err",
    "zwarning",
    "snr_u",
    "snr_g",
    "snr_r",
    "snr_i",
    "snr_z",
    "uri",
)


@dataclass
class Spectrum:
    """One calibrated 1D spectrum on its native pixels.

    Attributes
    ----------
    wavelength : numpy.ndarray
        Vacuum wavelength in Angstrom, float64, strictly increasing.
    flux : numpy.ndarray
        Flux density (survey units: 1e-17 erg/s/cm2/A for SDSS, relative for LAMOST), float32.
    ivar : numpy.ndarray
        Inverse variance of ``flux``, float32; zero where a pixel carries no information.
    mask : numpy.ndarray
        Boolean, True where a pixel is bad (survey mask set, zero ivar or non-finite flux).
    meta : dict
        Labels and provenance in the catalog vocabulary (see ``META_KEYS``); missing
        values (the surveys' -9999) are ``None``.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.flux.shape[0])

    @property
    def good_fraction(self) -> float:
        """Fraction of native pixels that are usable."""
        return float(np.count_nonzero(~self.mask)) / max(len(self), 1)
