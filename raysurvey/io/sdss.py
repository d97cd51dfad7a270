"""SDSS/BOSS/eBOSS/SDSS-V ``spec-*.fits`` files (full and lite).

Data model: data.sdss.org/datamodel/files/BOSS_SPECTRO_REDUX/RUN2D/spectra/PLATE4/spec.html
(and the SDSS-V specLite model). HDU 1 ``COADD`` is a per-pixel table (flux, loglam,
ivar, and_mask, or_mask, wdisp, sky, model; lower case until DR17, upper case in
SDSS-V); HDU 2 is one row of the object's spectroscopic record, named ``SPECOBJ``
(SDSS-I/II) or ``SPALL`` (BOSS, SDSS-V), with CLASS, SUBCLASS, Z, Z_ERR, ZWARNING,
SN_MEDIAN (u, g, r, i, z), PLUG_RA/PLUG_DEC and the ids. Full files carry more HDUs
(line fits, per-exposure spectra), which are ignored.

A pixel is bad where ``ivar <= 0`` (the pipeline zeroes it wherever it rejected a
pixel) or where ``and_mask`` has a bit that means no usable data (``UNUSABLE_BITS``).
The other SPPIXMASK bits are informational: real files carry e.g. BADFLAT (2),
MANYBADCOLUMNS (4) or NEARBADPIXEL..BRIGHTSKY (16-23) on every pixel of an otherwise
good spectrum.

Files written by other software may lack EXTNAMEs: HDU 1 is then recognised as the
COADD table by its flux/loglam/ivar columns and HDU 2 as the object record by its
CLASS and Z columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.fitsutil import (
    build_spectrum,
    clean_value,
    empty_meta,
    header_column_names,
    header_value,
    normalise_class,
    require_hdu,
    table_column,
)
from raysurvey.io.rawfits import RawHDU
from raysurvey.io.registry import FitsFile, SurveyReader, register_reader
from raysurvey.io.spectrum import Spectrum

SURVEY = "sdss"
BANDS = ("u", "g", "r", "i", "z")
METADATA_HDU_NAMES = ("SPECOBJ", "SPALL")
#: Columns that make an unnamed HDU 2 an object record (SPECOBJ/SPALL-like).
METADATA_COLUMNS = frozenset({"CLASS", "Z"})

#: SPPIXMASK bits (sdssMaskbits.par) that mean a pixel holds no usable data.
SPPIXMASK_UNUSABLE = {
    "NOPLUG": 0,
    "BADTRACE": 1,
    "FULLREJECT": 18,
    "NODATA": 24,
    "COMBINEREJ": 25,
}
UNUSABLE_BITS = sum(1 << bit for bit in SPPIXMASK_UNUSABLE.values())


def sdss_specobjid(plate: int, mjd: int, fiber: int, run2d: str | int | None) -> str | None:
    """The DR8+ specObjID bit-packing of plate, fiber, MJD and RUN2D.

    ``(plate << 50) | (fiber << 38) | ((mjd - 50000) << 24) | (run2d << 10)``, where a
    RUN2D of the form ``vN_M_P`` counts as ``(N - 5) * 10000 + M * 100 + P`` and a
    plain number (``26``, ``103``) as itself. Returned as a string, as in the catalogs
    (the values overflow signed int64 for high plate numbers).
    """
    if None in (plate, mjd, fiber, run2d):
        return None
    text = str(run2d).strip()
    try:
        if text.startswith("v"):
            major, minor, patch = (int(p) for p in text[1:].split("_"))
            run_code = (major - 5) * 10000 + minor * 100 + patch
        else:
            run_code = int(text)
    except ValueError:
        return None
    value = (int(plate) << 50) | (int(fiber) << 38) | ((int(mjd) - 50000) << 24) | (run_code << 10)
    return str(value)


def _first_row(hdu: Any, uri: str) -> dict[str, Any]:
    table = hdu.data
    if table is None or len(table) == 0:
        raise SpectrumReadError(uri, ReadErrorReason.SHAPE_MISMATCH, f"HDU {hdu.name} has no rows")
    row = table[0]
    return {name.upper(): row[name] for name in table.columns.names}


def _row_value(row: dict[str, Any], *keys: str, kind: type | None = None) -> Any:
    for key in keys:
        if key in row:
            value = row[key]
            if isinstance(value, np.ndarray):
                continue
            value = clean_value(value)
            if value is None:
                continue
            try:
                return kind(value) if kind is not None else value
            except (TypeError, ValueError):
                return None
    return None


def _is_metadata_hdu(hdu: Any) -> bool:
    """HDU 2 named SPECOBJ/SPALL, or (no EXTNAME) a table with CLASS and Z columns."""
    if not isinstance(hdu, fits.BinTableHDU):
        return False
    name = hdu.name.upper()
    if name in METADATA_HDU_NAMES:
        return True
    return name in ("", "PRIMARY") and METADATA_COLUMNS <= header_column_names(hdu)


def identify(f: FitsFile) -> bool:
    if f.n_hdus < 2 or f.header.get("NAXIS") != 0 or "SPEC_CLN" in f.header:
        return False
    return {"FLUX", "LOGLAM", "IVAR"} <= f.column_names(1)


def read(f: FitsFile, uri: str) -> Spectrum:
    hdul = f.hdul
    coadd = hdul[1].data
    if coadd is None or len(coadd) == 0:
        raise SpectrumReadError(uri, ReadErrorReason.SHAPE_MISMATCH, "COADD table has no rows")
    loglam = table_column(coadd, "loglam", uri, "COADD").astype(np.float64)
    flux = table_column(coadd, "flux", uri, "COADD")
    ivar = table_column(coadd, "ivar", uri, "COADD")
    names = {n.lower() for n in coadd.columns.names}
    bad = None
    if "and_mask" in names:
        and_mask = table_column(coadd, "and_mask", uri, "COADD").astype(np.int64, copy=False)
        bad = (and_mask & UNUSABLE_BITS) != 0

    meta_hdu = require_hdu(hdul, 2, uri)
    if not _is_metadata_hdu(meta_hdu):
        raise SpectrumReadError(
            uri,
            ReadErrorReason.MISSING_HDU,
            f"HDU 2 is {meta_hdu.name!r}, expected SPECOBJ or SPALL "
            "(or an unnamed table with CLASS and Z columns)",
        )
    row = _first_row(meta_hdu, uri)
    meta = _meta(row, f.header, meta_hdu.name, uri)
    return _assemble(uri, loglam, flux, ivar, bad, meta)


#: SPECOBJ/SPALL columns the record uses (``_meta``); the fast path reads only these.
ROW_COLUMNS = (
    "RUN2D",
    "PLATE",
    "FIELD",
    "MJD",
    "FIBERID",
    "SPECOBJID",
    "CATALOGID",
    "PLUG_RA",
    "RACAT",
    "FIBER_RA",
    "PLUG_DEC",
    "DECCAT",
    "FIBER_DEC",
    "CLASS",
    "SUBCLASS",
    "Z",
    "Z_ERR",
    "ZWARNING",
    "SN_MEDIAN",
    "SN_MEDIAN_ALL",
)
COADD_COLUMNS = ("loglam", "flux", "ivar", "and_mask")


def read_fast(f: FitsFile, uri: str) -> Spectrum:
    """``read`` from the raw bytes: COADD's four columns and HDU 2's first row only.

    Raises ``SpectrumReadError`` or ``rawfits.Unsupported`` where the file is not
    what ``read`` reads without error; the reader then gets the answer from ``read``.
    """
    raw = f.raw
    coadd = raw.hdu(1).table()
    found = {name: coadd.index(name) for name in COADD_COLUMNS}
    if coadd.nrows == 0 or None in [found[n] for n in COADD_COLUMNS[:3]]:
        raise SpectrumReadError(uri, ReadErrorReason.MISSING_COLUMN, "COADD columns")
    wanted = [i for i in found.values() if i is not None]
    columns = coadd.read(wanted)
    loglam = columns[found["loglam"]].astype(np.float64)
    flux = columns[found["flux"]]
    ivar = columns[found["ivar"]]
    bad = None
    if found["and_mask"] is not None:
        and_mask = columns[found["and_mask"]].astype(np.int64, copy=False)
        bad = (and_mask & UNUSABLE_BITS) != 0

    meta_hdu = raw.hdu(2)
    if not _is_raw_metadata_hdu(meta_hdu):
        raise SpectrumReadError(uri, ReadErrorReason.MISSING_HDU, "HDU 2")
    table = meta_hdu.table()
    if table.nrows == 0:
        raise SpectrumReadError(uri, ReadErrorReason.SHAPE_MISMATCH, "no rows")
    present = {name: table.index(name) for name in ROW_COLUMNS}
    present = {name: i for name, i in present.items() if i is not None}
    first = table.read(sorted(set(present.values())), rows=1)
    row = {name: first[i][0] for name, i in present.items()}
    meta = _meta(row, f.header, meta_hdu.name, uri)
    return _assemble(uri, loglam, flux, ivar, bad, meta)


def _is_raw_metadata_hdu(hdu: RawHDU) -> bool:
    """``_is_metadata_hdu`` on the raw header."""
    if not hdu.is_bintable:
        return False
    name = hdu.name.upper()
    if name in METADATA_HDU_NAMES:
        return True
    return name in ("", "PRIMARY") and METADATA_COLUMNS <= hdu.column_names()


def _meta(row: dict[str, Any], header: Any, hdu_name: str, uri: str) -> dict[str, Any]:
    """The record's labels from HDU 2's first row (upper-case names) and the primary header."""
    meta = empty_meta(SURVEY, "sdss_spec", uri)
    run2d = _row_value(row, "RUN2D", kind=str) or header_value(header, "RUN2D", kind=str)
    meta["data_release"] = header_value(header, "RELEASE", kind=str) or (run2d and f"RUN2D {run2d}")
    meta["metadata_hdu"] = hdu_name.upper() or "HDU2"
    meta["plate"] = _row_value(row, "PLATE", "FIELD", kind=int) or header_value(
        header, "PLATEID", kind=int
    )
    meta["mjd"] = _row_value(row, "MJD", kind=int) or header_value(header, "MJD", kind=int)
    meta["fiberid"] = _row_value(row, "FIBERID", kind=int)
    specobjid = _row_value(row, "SPECOBJID", kind=str)
    if specobjid is None:
        specobjid = sdss_specobjid(meta["plate"], meta["mjd"], meta["fiberid"], run2d)
    meta["specobjid"] = specobjid
    meta["catalogid"] = _row_value(row, "CATALOGID", kind=int)
    meta["ra"] = _row_value(row, "PLUG_RA", "RACAT", "FIBER_RA", kind=float)
    meta["dec"] = _row_value(row, "PLUG_DEC", "DECCAT", "FIBER_DEC", kind=float)
    if meta["ra"] is None:
        meta["ra"] = header_value(header, "PLUG_RA", kind=float)
        meta["dec"] = header_value(header, "PLUG_DEC", kind=float)
    meta["class"] = normalise_class(row.get("CLASS"))
    meta["subclass"] = _row_value(row, "SUBCLASS", kind=str)
    meta["z"] = _row_value(row, "Z", kind=float)
    meta["z_err"] = _row_value(row, "Z_ERR", kind=float)
    meta["zwarning"] = _row_value(row, "ZWARNING", kind=int)
    sn_median = row.get("SN_MEDIAN")
    if isinstance(sn_median, np.ndarray) and sn_median.size == 5:
        for band, value in zip(BANDS, sn_median, strict=True):
            meta[f"snr_{band}"] = clean_value(float(value))
    meta["snr_median_all"] = _row_value(row, "SN_MEDIAN_ALL", kind=float)
    return meta


def _assemble(uri, loglam, flux, ivar, bad, meta) -> Spectrum:
    with np.errstate(over="ignore", invalid="ignore"):  # bad loglam -> bad_wavelength below
        wavelength = 10.0**loglam
    return build_spectrum(uri, wavelength, flux, ivar, bad, meta)


register_reader(
    SurveyReader(
        "sdss_spec",
        SURVEY,
        identify,
        read,
        "SDSS/BOSS/SDSS-V spec(-lite): COADD + SPECOBJ|SPALL",
        fast_read=read_fast,
    )
)
