"""2D spectrum stripes, the input of MAC-Net and DRC-Net (layout: docs/formats.md).

LAMOST does not publish its 2D spectra; this is the simple layout a pipeline could
export per fibre, and the one ``raysurvey synth --with-2d`` writes:

- primary HDU without data: ``PRODTYPE = 'STRIPES'``, the spectrum's ids and labels
  (OBSID or SPECOBJID, RA, DEC, CLASS, SUBCLASS, Z, SNRG/SNRR/SNRI, ...);
- image HDUs ``BLUE`` and ``RED``: float [rows, columns] (any BITPIX; astropy applies
  BZERO/BSCALE), wavelength along the columns with a linear WCS ``CRVAL1``,
  ``CDELT1`` (or ``CD1_1``), ``CRPIX1`` (default 1), ``CUNIT1`` (default Angstrom),
  plus ``TRACEROW`` (0-based row of the trace centre; default the middle row),
  ``GAIN`` (e-/ADU) and ``RDNOISE`` (e-);
- optional ``BLUE_SKY`` / ``RED_SKY`` [columns]: the sky to subtract from the sum over
  rows, and ``BLUE_IVAR`` / ``RED_IVAR`` [rows, columns].

Identified by ``PRODTYPE = 'STRIPES'`` or, without PRODTYPE, by HDUs named BLUE and
RED; never by the file name.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.fitsutil import header_value
from raysurvey.io.products import (
    ProductReader,
    checked_image,
    hdu_names,
    optional_image,
    prodtype,
    product_meta,
    read_product,
    register_product_reader,
)
from raysurvey.io.registry import FitsFile

PRODUCT = "stripes"
ARMS = ("blue", "red")
MIN_ROWS, MIN_COLUMNS = 3, 16
#: CUNIT1 values understood, and their factor to Angstrom.
WAVE_UNITS = {"": 1.0, "angstrom": 1.0, "aa": 1.0, "a": 1.0, "nm": 10.0, "um": 1e4, "m": 1e10}
LINEAR_CTYPES = ("", "WAVE", "LINEAR", "AWAV")


@dataclass
class Stripes:
    """The blue- and red-arm stripes of one fibre.

    Attributes
    ----------
    blue, red : numpy.ndarray
        float32 [rows, columns] counts (ADU in files raysurvey writes).
    wave_blue, wave_red : numpy.ndarray
        float64 [columns] wavelength of each column, Angstrom.
    trace_row : dict
        ``{"blue": float, "red": float}``: 0-based row of each arm's trace centre.
    meta : dict
        Ids and labels (``obsid``, ``specobjid``, ``ra``, ``dec``, ``class``,
        ``subclass``, ``z``, ``snr_g``.. ``snr_i``, ``survey``, ``uri``, ``layout``) and
        per-arm ``gain_<arm>``, ``rdnoise_<arm>``, ``bunit_<arm>``.
    sky_blue, sky_red : numpy.ndarray or None
        float32 [columns] sky in the sum over rows, when the file has it.
    ivar_blue, ivar_red : numpy.ndarray or None
        float32 [rows, columns] inverse variance, when the file has it.
    """

    blue: np.ndarray
    red: np.ndarray
    wave_blue: np.ndarray
    wave_red: np.ndarray
    trace_row: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    sky_blue: np.ndarray | None = None
    sky_red: np.ndarray | None = None
    ivar_blue: np.ndarray | None = None
    ivar_red: np.ndarray | None = None

    def image(self, arm: str) -> np.ndarray:
        return getattr(self, _arm(arm))

    def wave(self, arm: str) -> np.ndarray:
        return getattr(self, f"wave_{_arm(arm)}")

    def variance(self, arm: str) -> np.ndarray:
        """Per-pixel variance: 1 / IVAR when the file has it, else from GAIN and RDNOISE."""
        ivar = getattr(self, f"ivar_{_arm(arm)}")
        if ivar is not None:
            with np.errstate(divide="ignore"):
                return np.where(ivar > 0, 1.0 / ivar, np.inf)
        gain, rdnoise = self.meta.get(f"gain_{arm}"), self.meta.get(f"rdnoise_{arm}")
        if gain is None or rdnoise is None:
            raise ValueError(f"no {arm.upper()}_IVAR and no GAIN/RDNOISE: variance unknown")
        counts = np.maximum(self.image(arm).astype(np.float64), 0.0)
        return (counts * gain + rdnoise**2) / gain**2

    def collapse(self, arm: str, subtract_sky: bool = True) -> np.ndarray:
        """Box extraction: the sum over rows, minus the sky vector when there is one."""
        total = self.image(arm).astype(np.float64).sum(axis=0)
        sky = getattr(self, f"sky_{_arm(arm)}")
        return total - sky if subtract_sky and sky is not None else total

    def snr(self, arm: str = "red", window: tuple[float, float] = (5900.0, 6900.0)) -> float:
        """Median S/N per column of the sky-subtracted box extraction within ``window`` (A)."""
        wave = self.wave(arm)
        inside = (wave >= window[0]) & (wave <= window[1])
        signal = self.collapse(arm)[inside]
        noise = np.sqrt(self.variance(arm).sum(axis=0))[inside]
        return float(np.median(signal / noise)) if inside.any() else float("nan")


def read_stripes(source: str | os.PathLike | bytes, **options: Any) -> Stripes:
    """Read one 2D stripes file from a path, URI or bytes: ``read_product(source,
    "stripes", uri=..., limits=...)``, whose docstring has the options and the errors (a
    survey spectrum or a cutout file: ``unknown_layout``)."""
    return read_product(source, PRODUCT, **options)


def _arm(arm: str) -> str:
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, not {arm!r}")
    return arm


def identify(f: FitsFile) -> bool:
    kind = prodtype(f)
    if kind:
        return kind == "STRIPES"
    return {"BLUE", "RED"} <= hdu_names(f)


def _wavelength(header: Any, n: int, uri: str, extname: str) -> np.ndarray:
    crval = header_value(header, "CRVAL1", kind=float)
    step = header_value(header, "CDELT1", "CD1_1", kind=float)
    for key, value in (("CRVAL1", crval), ("CDELT1", step)):
        if value is None:
            raise SpectrumReadError(
                uri, ReadErrorReason.MISSING_KEYWORD, f"HDU {extname} lacks {key}"
            )
    crpix = header_value(header, "CRPIX1", kind=float)
    crpix = 1.0 if crpix is None else crpix
    ctype = str(header.get("CTYPE1", "") or "").strip().upper()
    unit = str(header.get("CUNIT1", "") or "").strip().lower()
    if ctype not in LINEAR_CTYPES:
        raise SpectrumReadError(
            uri, ReadErrorReason.BAD_WAVELENGTH, f"HDU {extname}: CTYPE1 {ctype!r} is not linear"
        )
    if unit not in WAVE_UNITS:
        raise SpectrumReadError(
            uri, ReadErrorReason.BAD_WAVELENGTH, f"HDU {extname}: unknown CUNIT1 {unit!r}"
        )
    if step <= 0:
        raise SpectrumReadError(
            uri,
            ReadErrorReason.NON_MONOTONIC_WAVELENGTH,
            f"HDU {extname}: CDELT1 = {step} (wavelength must increase along the columns)",
        )
    wave = (crval + step * (np.arange(n) + 1.0 - crpix)) * WAVE_UNITS[unit]
    if not (500.0 < wave[0] and wave[-1] < 50_000.0):
        raise SpectrumReadError(
            uri,
            ReadErrorReason.BAD_WAVELENGTH,
            f"HDU {extname}: {wave[0]:.4g}-{wave[-1]:.4g} A is not optical/NIR",
        )
    return wave


def read(f: FitsFile, uri: str) -> Stripes:
    meta = product_meta(f.header, "stripes", uri)
    meta["exptime"] = header_value(f.header, "EXPTIME", kind=float)
    contam = f.header.get("CONTAM")
    meta["contaminated"] = bool(contam) if isinstance(contam, bool) else None
    arrays: dict[str, Any] = {}
    traces: dict[str, float] = {}
    for arm in ARMS:
        extname = arm.upper()
        hdu, image = checked_image(f, extname, uri, (MIN_ROWS, MIN_COLUMNS))
        rows, columns = image.shape
        header = hdu.header
        trace = header_value(header, "TRACEROW", kind=float)
        if trace is None:
            trace = header_value(f.header, "TRACEROW", kind=float)
        trace = (rows - 1) / 2 if trace is None else trace
        if not (math.isfinite(trace) and -0.5 <= trace <= rows - 0.5):
            raise SpectrumReadError(
                uri,
                ReadErrorReason.SHAPE_MISMATCH,
                f"HDU {extname}: TRACEROW {trace} lies outside its {rows} rows",
            )
        traces[arm] = float(trace)
        arrays[arm] = image
        arrays[f"wave_{arm}"] = _wavelength(header, columns, uri, extname)
        arrays[f"sky_{arm}"] = optional_image(f, f"{extname}_SKY", uri, (columns,))
        arrays[f"ivar_{arm}"] = optional_image(f, f"{extname}_IVAR", uri, (rows, columns))
        meta[f"gain_{arm}"] = header_value(header, "GAIN", kind=float)
        meta[f"rdnoise_{arm}"] = header_value(header, "RDNOISE", kind=float)
        meta[f"bunit_{arm}"] = header_value(header, "BUNIT", kind=str)
    return Stripes(trace_row=traces, meta=meta, **arrays)


LAMOST_STRIPES = register_product_reader(
    ProductReader("stripes", PRODUCT, identify, read, "2D stripes: BLUE + RED images, linear WCS")
)
