"""LAMOST low-resolution (LRS) 1D spectrum files, in all three published layouts.

Data-model pages: the "FITS file" sections of the LAMOST data release documentation
(e.g. dr3.lamost.org/doc/data-production-description for DR1-DR8, and the DR9/DR10
"LRS FITS" description for the table layout).

- DR1 (pipeline v2.6): primary 5 x N image; ``EXTEN0`` reads
  "Flux Inverse Subcontinuum Andmask Ormask": row 2 is the continuum-normalised
  flux, *not* wavelength, which comes from ``COEFF0 + COEFF1 * i`` (log10 Angstrom).
- DR2-DR8: primary 5 x N image, rows flux, ivar, wavelength, andmask, ormask, with N
  varying per file; OBSID and ``SNRU``..``SNRZ`` from DR6, ``SN_U``-style keys before.
- DR9 and later: header-only primary HDU carrying the labels, HDU 1 ``COADD`` a
  one-row table of vector columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK,
  NORMALIZATION.

Pixels with a nonzero and-mask (bad in every exposure) are flagged bad.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.fitsutil import (
    build_spectrum,
    check_image,
    empty_meta,
    header_value,
    image_data,
    normalise_class,
    require_hdu,
    require_keyword,
    table_column,
)
from raysurvey.io.registry import FitsFile, SurveyReader, register_reader
from raysurvey.io.spectrum import Spectrum

SURVEY = "lamost"
BANDS = ("u", "g", "r", "i", "z")


def _is_lamost(header: Mapping[str, Any]) -> bool:
    telescope = str(header.get("TELESCOP", "")).upper()
    origin = str(header.get("ORIGIN", "")).upper()
    return "LAMOST" in telescope or "LAMOST" in origin


def _row_names(header: Mapping[str, Any]) -> list[str]:
    """Row names from the row-description keyword.

    DR1-DR5 separate them with spaces ("Flux Inverse Wavelength Andmask Ormask"),
    DR6-DR8 with commas and spaces ("Flux, Inverse, Wavelength, Andmask, Ormask").
    """
    text = str(header.get("EXTEN0", "")).lower().replace(",", " ")
    return text.split()


def lamost_meta(header: Mapping[str, Any], layout: str, uri: str) -> dict:
    """Labels from a LAMOST primary header (same keywords in every layout)."""
    meta = empty_meta(SURVEY, layout, uri)
    meta["data_release"] = header_value(header, "DATA_V", "DR", kind=str)
    meta["obsid"] = header_value(header, "OBSID", kind=int)
    meta["designation"] = header_value(header, "DESIG", kind=str)
    meta["ra"] = header_value(header, "RA", "RA_OBS", kind=float)
    meta["dec"] = header_value(header, "DEC", "DEC_OBS", kind=float)
    meta["class"] = normalise_class(header.get("CLASS"))
    meta["subclass"] = header_value(header, "SUBCLASS", kind=str)
    meta["z"] = header_value(header, "Z", kind=float)
    meta["z_err"] = header_value(header, "Z_ERR", kind=float)
    meta["zwarning"] = header_value(header, "ZFLAG", "Z_FLAG", "ZWARNING", kind=int)
    for band in BANDS:
        # SNRx from DR6 on; SN_x in older releases.
        meta[f"snr_{band}"] = header_value(
            header, f"SNR{band.upper()}", f"SN_{band.upper()}", kind=float
        )
    meta["plate"] = header_value(header, "PLANID", kind=str)
    meta["mjd"] = header_value(header, "LMJD", "MJD", kind=int)
    meta["fiberid"] = header_value(header, "FIBERID", kind=int)
    return meta


# -- DR1: "Flux Inverse Subcontinuum Andmask Ormask" -------------------------------


def _row2_is_wavelength(data: np.ndarray | None) -> bool:
    """For files without a row description: does row 2 look like a wavelength array?"""
    if data is None or data.ndim != 2 or data.shape[0] < 3:
        return False
    row = np.asarray(data[2], dtype=np.float64)
    return bool(np.all(np.isfinite(row)) and 2500 < row[0] < row[-1] < 12000)


def _image_rows_name(f: FitsFile, row: str) -> bool | None:
    """For a LAMOST 5 x N image: does its row description name ``row``? None when the
    file has no description (the caller then looks at the data); False when it is not
    a LAMOST image at all."""
    if f.header.get("NAXIS") != 2 or not _is_lamost(f.header):
        return False
    rows = _row_names(f.header)
    return (row in rows) if rows else None


def identify_dr1(f: FitsFile) -> bool:
    named = _image_rows_name(f, "subcontinuum")
    if named is not None:
        return named
    return "COEFF0" in f.header and not _row2_is_wavelength(f.primary_data())


def read_dr1(f: FitsFile, uri: str) -> Spectrum:
    return _dr1(f, image_data(f.hdul[0], uri, min_rows=5), uri)


def read_dr1_fast(f: FitsFile, uri: str) -> Spectrum:
    return _dr1(f, check_image(f.primary_data(), uri, min_rows=5), uri)


def _dr1(f: FitsFile, data: np.ndarray, uri: str) -> Spectrum:
    header = f.header
    coeff0 = float(require_keyword(header, "COEFF0", uri))
    coeff1 = float(require_keyword(header, "COEFF1", uri))
    n_pix = data.shape[1]
    wavelength = 10.0 ** (coeff0 + coeff1 * np.arange(n_pix))
    meta = lamost_meta(header, "lamost_dr1", uri)
    meta["data_release"] = meta["data_release"] or "LAMOST DR1"
    return build_spectrum(uri, wavelength, data[0], data[1], data[3] != 0, meta)


# -- DR2-DR8: "Flux Inverse Wavelength Andmask Ormask" -----------------------------


def identify_image(f: FitsFile) -> bool:
    named = _image_rows_name(f, "wavelength")
    if named is not None:
        return named
    return _row2_is_wavelength(f.primary_data())  # a file without the row description


def read_image(f: FitsFile, uri: str) -> Spectrum:
    return _image(f, image_data(f.hdul[0], uri, min_rows=3), uri)


def read_image_fast(f: FitsFile, uri: str) -> Spectrum:
    return _image(f, check_image(f.primary_data(), uri, min_rows=3), uri)


def _image(f: FitsFile, data: np.ndarray, uri: str) -> Spectrum:
    header = f.header
    rows = _row_names(header)
    index = {name: rows.index(name) for name in rows} if rows else {}
    flux = data[index.get("flux", 0)]
    ivar = data[index.get("inverse", 1)]
    wavelength = data[index.get("wavelength", 2)]
    and_row = index.get("andmask", 3)
    bad = data[and_row] != 0 if data.shape[0] > and_row else None
    return build_spectrum(
        uri, wavelength, flux, ivar, bad, lamost_meta(header, "lamost_image", uri)
    )


# -- DR9 and later: COADD table ----------------------------------------------------


def identify_table(f: FitsFile) -> bool:
    if f.n_hdus < 2 or f.header.get("NAXIS") != 0 or not _is_lamost(f.header):
        return False
    return {"FLUX", "WAVELENGTH"} <= f.column_names(1)


def _vector(table: fits.FITS_rec, name: str, uri: str) -> np.ndarray:
    column = table_column(table, name, uri, "COADD")
    if column.shape[0] != 1:
        raise SpectrumReadError(
            uri, ReadErrorReason.SHAPE_MISMATCH, f"COADD has {column.shape[0]} rows, expected 1"
        )
    return column[0].reshape(-1)


def read_table(f: FitsFile, uri: str) -> Spectrum:
    table = require_hdu(f.hdul, 1, uri).data
    if table is None or len(table) == 0:
        raise SpectrumReadError(uri, ReadErrorReason.SHAPE_MISMATCH, "COADD table has no rows")
    flux = _vector(table, "FLUX", uri)
    ivar = _vector(table, "IVAR", uri)
    wavelength = _vector(table, "WAVELENGTH", uri)
    names = {n.upper() for n in table.columns.names}
    bad = _vector(table, "ANDMASK", uri) != 0 if "ANDMASK" in names else None
    meta = lamost_meta(f.header, "lamost_table", uri)
    return build_spectrum(uri, wavelength, flux, ivar, bad, meta)


TABLE_COLUMNS = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK")


def read_table_fast(f: FitsFile, uri: str) -> Spectrum:
    """``read_table`` from the raw bytes: four vector columns of COADD's one row."""
    table = f.raw.hdu(1).table()
    found = {name: table.index(name) for name in TABLE_COLUMNS}
    if table.nrows != 1 or None in [found[n] for n in TABLE_COLUMNS[:3]]:
        raise SpectrumReadError(uri, ReadErrorReason.SHAPE_MISMATCH, "COADD")
    row = table.read([i for i in found.values() if i is not None])
    vectors = {name: row[i][0].reshape(-1) for name, i in found.items() if i is not None}
    bad = vectors["ANDMASK"] != 0 if "ANDMASK" in vectors else None
    meta = lamost_meta(f.header, "lamost_table", uri)
    return build_spectrum(uri, vectors["WAVELENGTH"], vectors["FLUX"], vectors["IVAR"], bad, meta)


register_reader(
    SurveyReader(
        "lamost_table",
        SURVEY,
        identify_table,
        read_table,
        "LAMOST DR9+ COADD table",
        fast_read=read_table_fast,
    )
)
register_reader(
    SurveyReader(
        "lamost_dr1",
        SURVEY,
        identify_dr1,
        read_dr1,
        "LAMOST DR1 5xN image, log-linear COEFF0/1",
        fast_read=read_dr1_fast,
    )
)
register_reader(
    SurveyReader(
        "lamost_image",
        SURVEY,
        identify_image,
        read_image,
        "LAMOST DR2-DR8 5xN image",
        fast_read=read_image_fast,
    )
)
