"""SDSS DR7 and earlier ``spSpec-MJD-PLATE-FIBER.fit`` files.

Data model: classic.sdss.org/dr7/dm/flatFiles/spSpec.html. The primary HDU is an
image of at least four rows: flux, continuum-subtracted flux, error as 1-sigma (not
inverse variance) and a mask (some copies carry a fifth row); wavelength is
``10 ** (COEFF0 + COEFF1 * i)`` in vacuum. The class is the number ``SPEC_CLN``;
there is no SUBCLASS and no specObjID keyword (the DR8+ id is derived from
PLATEID/MJD/FIBERID with RUN2D 26, the rerun that carried DR7 spectra into DR8).

A pixel is bad where its error is zero or negative (the DR7 convention); the mask
row also flags emission lines and is not used to discard pixels.
"""

from __future__ import annotations

import numpy as np

from raysurvey.io.fitsutil import (
    build_spectrum,
    check_image,
    empty_meta,
    header_value,
    image_data,
    require_keyword,
)
from raysurvey.io.registry import FitsFile, SurveyReader, register_reader
from raysurvey.io.sdss import sdss_specobjid
from raysurvey.io.spectrum import Spectrum

SURVEY = "sdss"
DR7_RUN2D = "26"

#: SPEC_CLN codes (spSpec.html): 0 unknown, 1 star, 2 galaxy, 3 QSO, 4 high-z QSO,
#: 5 sky, 6 late-type star, 7 emission-line galaxy. The code itself stays in
#: ``meta["spec_cln"]``; sky fibres become UNKNOWN (excluded from training).
SPEC_CLN_CLASS: dict[int, str] = {
    0: "UNKNOWN",
    1: "STAR",
    2: "GALAXY",
    3: "QSO",
    4: "QSO",
    5: "UNKNOWN",
    6: "STAR",
    7: "GALAXY",
}


def identify(f: FitsFile) -> bool:
    header = f.header
    return header.get("NAXIS") == 2 and "SPEC_CLN" in header and "COEFF0" in header


def read(f: FitsFile, uri: str) -> Spectrum:
    return _read(f, image_data(f.hdul[0], uri, min_rows=4), uri)


def read_fast(f: FitsFile, uri: str) -> Spectrum:
    return _read(f, check_image(f.primary_data(), uri, min_rows=4), uri)


def _read(f: FitsFile, data: np.ndarray, uri: str) -> Spectrum:
    header = f.header
    coeff0 = float(require_keyword(header, "COEFF0", uri))
    coeff1 = float(require_keyword(header, "COEFF1", uri))
    wavelength = 10.0 ** (coeff0 + coeff1 * np.arange(data.shape[1]))
    sigma = np.asarray(data[2], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(sigma > 0, 1.0 / sigma**2, 0.0)
    meta = empty_meta(SURVEY, "sdss_spspec", uri)
    meta["data_release"] = "SDSS DR7"
    spec_cln = header_value(header, "SPEC_CLN", kind=int)
    meta["spec_cln"] = spec_cln
    meta["class"] = SPEC_CLN_CLASS.get(spec_cln, "UNKNOWN")
    meta["plate"] = header_value(header, "PLATEID", kind=int)
    meta["mjd"] = header_value(header, "MJD", kind=int)
    meta["fiberid"] = header_value(header, "FIBERID", kind=int)
    meta["specobjid"] = sdss_specobjid(meta["plate"], meta["mjd"], meta["fiberid"], DR7_RUN2D)
    meta["ra"] = header_value(header, "RAOBJ", kind=float)
    meta["dec"] = header_value(header, "DECOBJ", kind=float)
    meta["z"] = header_value(header, "Z", kind=float)
    meta["z_err"] = header_value(header, "Z_ERR", kind=float)
    meta["zwarning"] = header_value(header, "Z_WARNIN", "ZWARNING", kind=int)
    for band in ("g", "r", "i"):
        meta[f"snr_{band}"] = header_value(header, f"SN_{band.upper()}", kind=float)
    return build_spectrum(uri, wavelength, data[0], ivar, sigma <= 0, meta)


register_reader(
    SurveyReader(
        "sdss_spspec",
        SURVEY,
        identify,
        read,
        "SDSS DR7 spSpec 4/5xN image, SPEC_CLN",
        fast_read=read_fast,
    )
)
