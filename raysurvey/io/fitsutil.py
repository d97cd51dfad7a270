"""Small helpers shared by the survey readers: header values, columns, validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.registry import header_column_names  # noqa: F401 - re-exported
from raysurvey.io.spectrum import META_KEYS, Spectrum

#: The surveys' placeholder for a missing number.
MISSING_SENTINELS = (-9999, -9999.0, -999, -999.0)

CLASS_NAMES = ("STAR", "GALAXY", "QSO")


def clean_value(value: Any) -> Any:
    """Header/column value with -9999 placeholders, NaN and blank strings as ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value in MISSING_SENTINELS:
            return None
        return value
    return value


def header_value(header: Mapping[str, Any], *keys: str, kind: type | None = None) -> Any:
    """First present, non-missing value among ``keys`` (older and newer spellings)."""
    for key in keys:
        if key in header:
            value = clean_value(header[key])
            if value is not None:
                return _coerce(value, kind)
    return None


def _coerce(value: Any, kind: type | None) -> Any:
    if kind is None or value is None:
        return value
    try:
        if kind is int:
            return int(float(value))
        if kind is float:
            out = float(value)
            return out if math.isfinite(out) else None
        if kind is str:
            return str(value).strip() or None
    except (TypeError, ValueError):
        return None
    return value


def normalise_class(value: Any) -> str | None:
    """Survey CLASS as STAR, GALAXY, QSO or UNKNOWN (LAMOST's "Unknown", blanks)."""
    value = clean_value(value)
    if value is None:
        return None
    text = str(value).strip().upper()
    return text if text in CLASS_NAMES else "UNKNOWN"


def require_keyword(header: Mapping[str, Any], key: str, uri: str, hdu: str = "primary") -> Any:
    """A header keyword the layout cannot do without."""
    if key not in header or clean_value(header[key]) is None:
        raise SpectrumReadError(uri, ReadErrorReason.MISSING_KEYWORD, f"{hdu} header lacks {key}")
    return header[key]


def require_hdu(hdul: fits.HDUList, name: str | int, uri: str) -> Any:
    """An HDU by EXTNAME or index, or a ``missing_hdu`` error."""
    try:
        return hdul[name]
    except (KeyError, IndexError):
        raise SpectrumReadError(uri, ReadErrorReason.MISSING_HDU, f"no HDU {name!r}") from None


def table_column(table: fits.FITS_rec, name: str, uri: str, hdu: str) -> np.ndarray:
    """A column of a binary table by case-insensitive name, or ``missing_column``."""
    names = {n.lower(): n for n in table.columns.names}
    if name.lower() not in names:
        raise SpectrumReadError(
            uri, ReadErrorReason.MISSING_COLUMN, f"HDU {hdu} has no column {name}"
        )
    return np.asarray(table[names[name.lower()]])


def image_data(hdu: Any, uri: str, min_rows: int) -> np.ndarray:
    """A 2D image with at least ``min_rows`` rows (the LAMOST and spSpec layouts)."""
    return check_image(hdu.data, uri, min_rows)


def check_image(data: np.ndarray | None, uri: str, min_rows: int) -> np.ndarray:
    """``data`` if it is a 2D image with at least ``min_rows`` rows, else ``shape_mismatch``."""
    if data is None or data.ndim != 2 or data.shape[0] < min_rows:
        shape = None if data is None else data.shape
        raise SpectrumReadError(
            uri, ReadErrorReason.SHAPE_MISMATCH, f"expected a >= {min_rows} x N image, got {shape}"
        )
    return data


def empty_meta(survey: str, layout: str, uri: str) -> dict[str, Any]:
    meta: dict[str, Any] = dict.fromkeys(META_KEYS)
    meta.update(survey=survey, layout=layout, uri=uri)
    return meta


def build_spectrum(
    uri: str,
    wavelength: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    bad: np.ndarray | None,
    meta: dict[str, Any],
) -> Spectrum:
    """Validate arrays and assemble a ``Spectrum``; the checks every layout shares.

    Pixels with non-finite flux, non-finite or non-positive ivar, or a survey mask
    bit set are flagged in ``mask`` and get zero ivar; a spectrum with no usable
    pixel at all is an error (``no_valid_flux``), as is an all-zero flux array.
    """
    arrays = {"wavelength": wavelength, "flux": flux, "ivar": ivar}
    if bad is not None:
        arrays["mask"] = bad
    lengths = {k: int(np.size(v)) for k, v in arrays.items()}
    if any(np.ndim(v) != 1 for v in arrays.values()) or len(set(lengths.values())) != 1:
        raise SpectrumReadError(
            uri, ReadErrorReason.SHAPE_MISMATCH, f"array lengths differ: {lengths}"
        )
    if lengths["flux"] < 2:
        raise SpectrumReadError(uri, ReadErrorReason.NO_VALID_FLUX, "fewer than 2 pixels")
    wave = np.asarray(wavelength, dtype=np.float64)
    # One pass decides both: NaN steps fail "> 0", so a non-finite wavelength anywhere
    # shows up here and is told apart from a decreasing one only on the error path.
    if not (np.diff(wave) > 0).all():
        _raise_wavelength_error(wave, uri)
    if not (500.0 < wave[0] < 50_000.0 and 500.0 < wave[-1] < 50_000.0):
        raise SpectrumReadError(
            uri,
            ReadErrorReason.BAD_WAVELENGTH,
            f"{wave[0]:.4g}-{wave[-1]:.4g} A is not optical/NIR",
        )
    flux32 = np.asarray(flux, dtype=np.float32)
    ivar32 = np.array(ivar, dtype=np.float32)  # a copy: bad pixels are zeroed below
    finite = np.isfinite(flux32)
    if not np.any(flux32[finite] != 0):
        raise SpectrumReadError(
            uri, ReadErrorReason.NO_VALID_FLUX, "flux is all zero or non-finite"
        )
    good = finite & (ivar32 > 0) & (ivar32 < np.inf)
    if bad is not None:
        good &= ~np.asarray(bad, dtype=bool)
    if not good.any():
        raise SpectrumReadError(
            uri, ReadErrorReason.NO_VALID_FLUX, "every pixel is masked or has zero ivar"
        )
    mask = ~good
    ivar32[mask] = 0
    return Spectrum(wavelength=wave, flux=flux32, ivar=ivar32, mask=mask, meta=meta)


def _raise_wavelength_error(wave: np.ndarray, uri: str) -> None:
    if not np.all(np.isfinite(wave)) or wave[0] <= 0:
        raise SpectrumReadError(
            uri, ReadErrorReason.BAD_WAVELENGTH, "non-finite or non-positive wavelength"
        )
    where = int(np.argmin(np.diff(wave) > 0))
    raise SpectrumReadError(
        uri,
        ReadErrorReason.NON_MONOTONIC_WAVELENGTH,
        f"wavelength does not increase at pixel {where} "
        f"({wave[where]:.3f} -> {wave[where + 1]:.3f})",
    )
