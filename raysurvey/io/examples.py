"""Small example files in every published layout, with the values they hold.

Written from the surveys' data-model pages (HDU names, header keywords, column names
and types as published: lower-case COADD columns and a string SPECOBJID in SDSS
DR8-DR17 files, upper case and int64 ids in SDSS-V, the LAMOST DR9+ masks stored
as float vectors, ...), not from what the readers expect. The tests read them back
value by value and ``make demo`` summarises them. Each file carries a known, smooth
spectrum with a few flagged pixels, so expected values can be computed by hand.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits


@dataclass(frozen=True)
class ExampleFile:
    """One example file: its bytes and what a correct reader must return."""

    name: str
    layout: str
    data: bytes
    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    bad_pixels: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)


def smooth_flux(n_pix: int, level: float = 100.0) -> np.ndarray:
    """A positive continuum with gentle structure, exact in float32."""
    i = np.arange(n_pix)
    return (level + 10.0 * np.sin(i / 50.0) + 0.01 * i).astype(np.float32)


def smooth_ivar(n_pix: int) -> np.ndarray:
    return (0.25 + 0.05 * np.cos(np.arange(n_pix) / 80.0)).astype(np.float32)


def _to_bytes(hdul: fits.HDUList) -> bytes:
    buffer = io.BytesIO()
    hdul.writeto(buffer, output_verify="exception")
    return buffer.getvalue()


def _header(cards: list[tuple[str, Any, str]]) -> fits.Header:
    header = fits.Header()
    for key, value, comment in cards:
        header[key] = (value, comment)
    return header


# -- LAMOST ------------------------------------------------------------------------

LAMOST_LABELS = {
    "obsid": 101_501_234,
    "ra": 150.123456,
    "dec": 25.654321,
    "class": "STAR",
    "subclass": "G5",
    "z": 0.00012345,
    "z_err": 0.00001,
}


#: The observing, fibre and WCS keywords real LAMOST headers carry beside the labels
#: (~100 cards in all); readers must skip them, and they set astropy's parse cost.
LAMOST_OBSERVING_CARDS: list[tuple[str, Any, str]] = [
    ("AUTHOR", "LAMOST Pipeline", "Who compiled the information"),
    ("N_EXTEN", 1, "The extension number"),
    ("LONGITUD", 117.58, "Longitude of site"),
    ("LATITUDE", 40.39, "Latitude of site"),
    ("FOCUS", 19964.0, "Telescope focus (mm)"),
    ("CAMVER", "v2.0", "Version of the Camera hardware and control"),
    ("DATE-OBS", "2012-02-11T14:02:35.0", "The observation median UTC"),
    ("DATE-BEG", "2012-02-11T13:55:24.0", "The observation start local time"),
    ("DATE-END", "2012-02-11T14:29:49.0", "The observation end local time"),
    ("OFFSET", False, "Whether there is a fiber offset"),
    ("OFFSET_V", 0.0, "Offset value in arcsecond"),
    ("CELL_ID", "E1224", "Fiber Unit ID on the focal plane"),
    ("X_VALUE", -12.5, "X coordinate of object on the focal plane"),
    ("Y_VALUE", 140.25, "Y coordinate of object on the focal plane"),
    ("OBJNAME", "513201120101000241", "Name of object"),
    ("TSOURCE", "LEGAS_GAC", "Name of input catalog"),
    ("TCOMMENT", "", "Target information"),
    ("TFROM", "SDSS_PHOTO", "Target catalog"),
    ("FIBERMAS", 0, "Bitwise mask of the fiber"),
    ("MAG3", 16.91, "Mag3 of object"),
    ("MAG4", 16.72, "Mag4 of object"),
    ("MAG5", 16.64, "Mag5 of object"),
    ("MAG6", -9999.0, "Mag6 of object"),
    ("MAG7", -9999.0, "Mag7 of object"),
    ("OBS_TYPE", "OBJ", "The type of target (OBJ, FLAT, ARC or BIAS)"),
    ("OBSCOMM", "Science", "Science or Test"),
    ("RADECSYS", "FK5", "Equatorial coordinate system"),
    ("EQUINOX", 2000.0, "Equinox in years"),
    ("EXPID01", "b1-20120211140235-00015324", "ID string for blue exposure 1"),
    ("EXPID02", "b1-20120211141855-00015325", "ID string for blue exposure 2"),
    ("EXPID03", "r1-20120211140235-00015324", "ID string for red exposure 1"),
    ("EXPID04", "r1-20120211141855-00015325", "ID string for red exposure 2"),
    ("NEXP", 2, "Number of valid exposures"),
    ("NEXP_B", 2, "Number of valid blue exposures"),
    ("NEXP_R", 2, "Number of valid red exposures"),
    ("EXPT_B", 1800.0, "Blue exposure duration time (s)"),
    ("EXPT_R", 1800.0, "Red exposure duration time (s)"),
    ("EXPTIME", 1800.0, "Minimum of exposure time for all cameras"),
    ("BESTEXP", 15324, "MJM of the best exposure"),
    ("SCAMEAN", 1.02, "Mean value of scale factor"),
    ("SEEING", 3.2, "Seeing during exposure (arcsec)"),
    ("MOONPHA", 18.7, "Moon phase for a 29.53 days period"),
    ("TEMPCCDB", -118.0, "The temperature of blue CCD"),
    ("TEMPCCDR", -115.0, "The temperature of red CCD"),
    ("SKYLEVEL", "", "Sky level"),
    ("NSKIES", 18, "Sky fiber number"),
    ("SKYCHI2", 1.15, "Mean chi^2 of sky-subtraction"),
    ("SCHI2MIN", 0.71, "Minimum chi^2 of sky-subtraction"),
    ("SCHI2MAX", 2.04, "Maximum chi^2 of sky-subtraction"),
    ("FSTAR", "", "Fiber ID of flux standard stars"),
    ("FCBY", "auto", "Standard stars origin (auto, manual or catalog)"),
    ("HELIO", True, "Heliocentric correction"),
    ("HELIO_RV", 12.5, "Heliocentric correction (km/s)"),
    ("CRVAL1", 3.5670, "Central wavelength (log10) of first pixel"),
    ("CD1_1", 1e-4, "Log10 dispersion per pixel"),
    ("CRPIX1", 1, "Starting pixel (1-indexed)"),
    ("CTYPE1", "LINEAR", ""),
    ("DC-FLAG", 1, "Log-linear flag"),
    ("BUNIT", "10**-17 erg/s/cm^2/A", "Units of flux"),
]


def _lamost_cards(dr: str, snr_style: str, obsid: bool = True) -> list[tuple[str, Any, str]]:
    snr = {"u": 12.5, "g": 45.25, "r": 60.5, "i": 70.75, "z": 40.0}
    cards: list[tuple[str, Any, str]] = [
        ("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
        ("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
        ("FILENAME", "spec-55977-GAC_080N37_V1_sp03-241.fits", "File name"),
        ("DATA_V", f"LAMOST {dr}", "Data version"),
        ("DATE", "2014-09-01T02:03:04", "File creation time"),
        ("MJD", 55977, "Local Modified Julian Day"),
        ("LMJD", 55977, "Local Modified Julian Day"),
        ("PLANID", "GAC_080N37_V1", "Plan ID in use"),
        ("SPID", 3, "Spectrograph ID"),
        ("FIBERID", 241, "Fiber ID of Object"),
        ("DESIG", "LAMOST J100029.62+253915.5", "Designation of LAMOST target"),
        ("RA", LAMOST_LABELS["ra"], "Right ascension of object (deg)"),
        ("DEC", LAMOST_LABELS["dec"], "Declination of object (deg)"),
        ("RA_OBS", LAMOST_LABELS["ra"] + 1e-5, "Right ascension of fiber (deg)"),
        ("DEC_OBS", LAMOST_LABELS["dec"] - 1e-5, "Declination of fiber (deg)"),
        ("OBJTYPE", "Star", "Object type from input catalog"),
        ("FIBERTYP", "Obj", "Fiber type of object"),
        ("MAGTYPE", "ugriz", "Magnitude type of object"),
        ("MAG1", 17.52, "Mag1 of object"),
        ("MAG2", -9999.0, "Mag2 of object"),
        ("CLASS", "STAR", "Class of object"),
        ("SUBCLASS", "G5", "Subclass of object"),
        ("Z", LAMOST_LABELS["z"], "Redshift of object"),
        ("Z_ERR", LAMOST_LABELS["z_err"], "Redshift error of object"),
        ("ZFLAG", "LASP", "Which method computes the redshift"),
        ("VERSPIPE", "v2.9.7", "Version of Pipeline"),
        *LAMOST_OBSERVING_CARDS,
    ]
    if obsid:
        cards.insert(3, ("OBSID", LAMOST_LABELS["obsid"], "Unique number ID of this spectrum"))
    for band, value in snr.items():
        key = f"SNR{band.upper()}" if snr_style == "SNR" else f"SN_{band.upper()}"
        cards.append((key, value, f"Signal to noise ratio of {band}"))
    return cards


LAMOST_SNR = {"snr_u": 12.5, "snr_g": 45.25, "snr_r": 60.5, "snr_i": 70.75, "snr_z": 40.0}


def lamost_image(n_pix: int = 3891, gzipped: bool = False) -> ExampleFile:
    """LAMOST DR2-DR8: 5 x N image, rows flux, ivar, wavelength, andmask, ormask."""
    coeff0, coeff1 = 3.5670, 1e-4
    wavelength = (10.0 ** (coeff0 + coeff1 * np.arange(n_pix))).astype(np.float32)
    flux, ivar = smooth_flux(n_pix), smooth_ivar(n_pix)
    andmask = np.zeros(n_pix, np.float32)
    ormask = np.zeros(n_pix, np.float32)
    bad = (100, 101, 2000)
    andmask[list(bad)] = 4.0
    ormask[[100, 101, 2000, 2500]] = 4.0
    header = _header(_lamost_cards("DR5", "SNR"))
    header["EXTEN0"] = ("Flux Inverse Wavelength Andmask Ormask", "Rows of the image")
    header["COEFF0"] = (coeff0, "Central wavelength (log10) of first pixel")
    header["COEFF1"] = (coeff1, "Log10 dispersion per pixel")
    header["VACUUM"] = (True, "Wavelengths are in vacuum")
    image = np.vstack([flux, ivar, wavelength, andmask, ormask])
    data = _to_bytes(fits.HDUList([fits.PrimaryHDU(image, header=header)]))
    meta = dict(LAMOST_LABELS, survey="lamost", data_release="LAMOST DR5", **LAMOST_SNR)
    meta.update(layout="lamost_image", subclass="G5", zwarning=None)
    return _finish(
        "lamost_dr5.fits", "lamost_image", data, wavelength, flux, ivar, bad, meta, gzipped
    )


def lamost_dr1(n_pix: int = 3909, gzipped: bool = False) -> ExampleFile:
    """LAMOST DR1: row 2 is the continuum-subtracted flux; wavelength from COEFF0/1."""
    coeff0, coeff1 = 3.5682, 1e-4
    wavelength = 10.0 ** (coeff0 + coeff1 * np.arange(n_pix))
    flux, ivar = smooth_flux(n_pix, 50.0), smooth_ivar(n_pix)
    subcont = (flux / np.float32(50.0)).astype(np.float32)
    andmask = np.zeros(n_pix, np.float32)
    bad = (0, 3908)
    andmask[list(bad)] = 1.0
    cards = [c for c in _lamost_cards("DR1", "SN_", obsid=False) if c[0] != "VERSPIPE"]
    header = _header(cards)
    header["EXTEN0"] = ("Flux Inverse Subcontinuum Andmask Ormask", "Rows of the image")
    header["COEFF0"] = (coeff0, "Central wavelength (log10) of first pixel")
    header["COEFF1"] = (coeff1, "Log10 dispersion per pixel")
    header["VERSPIPE"] = ("v2.6.4", "Version of Pipeline")
    image = np.vstack([flux, ivar, subcont, andmask, andmask.copy()])
    data = _to_bytes(fits.HDUList([fits.PrimaryHDU(image, header=header)]))
    meta = {k: v for k, v in LAMOST_LABELS.items() if k != "obsid"}
    meta.update(
        survey="lamost", data_release="LAMOST DR1", layout="lamost_dr1", obsid=None, **LAMOST_SNR
    )
    return _finish(
        "lamost_dr1.fits", "lamost_dr1", data, wavelength, flux, ivar, bad, meta, gzipped
    )


def lamost_table(n_pix: int = 3909, gzipped: bool = False) -> ExampleFile:
    """LAMOST DR9+: header-only primary, HDU 1 COADD one row of vector columns."""
    wavelength = (10.0 ** (3.5670 + 1e-4 * np.arange(n_pix))).astype(np.float32)
    flux, ivar = smooth_flux(n_pix, 200.0), smooth_ivar(n_pix)
    andmask = np.zeros(n_pix, np.float32)
    bad = (5, 6, 7)
    andmask[list(bad)] = 8.0
    norm = (flux / np.float32(200.0)).astype(np.float32)
    header = _header(_lamost_cards("DR10 v2.0", "SNR"))
    header["CLASS"] = "QSO"
    header["SUBCLASS"] = ""
    header["Z"] = 1.2345
    form = f"{n_pix}E"
    columns = [
        fits.Column(name=name, format=form, array=arr.reshape(1, -1))
        for name, arr in (
            ("FLUX", flux),
            ("IVAR", ivar),
            ("WAVELENGTH", wavelength),
            ("ANDMASK", andmask),
            ("ORMASK", andmask),
            ("NORMALIZATION", norm),
        )
    ]
    coadd = fits.BinTableHDU.from_columns(columns, name="COADD")
    data = _to_bytes(fits.HDUList([fits.PrimaryHDU(header=header), coadd]))
    meta = dict(LAMOST_LABELS, survey="lamost", data_release="LAMOST DR10 v2.0", **LAMOST_SNR)
    meta.update(layout="lamost_table", **{"class": "QSO", "subclass": None, "z": 1.2345})
    return _finish(
        "lamost_dr10.fits", "lamost_table", data, wavelength, flux, ivar, bad, meta, gzipped
    )


# -- SDSS --------------------------------------------------------------------------

SDSS_SPECOBJID = "1192355533059811328"  # plate 1059, fiber 100, MJD 52618, RUN2D 26


def sdss_spec(
    metadata_hdu: str = "SPECOBJ", n_pix: int = 3856, gzipped: bool = False
) -> ExampleFile:
    """SDSS spec-lite: COADD table + SPECOBJ (SDSS-I/II) or SPALL (BOSS/SDSS-V) + SPZLINE."""
    legacy = metadata_hdu == "SPECOBJ"
    coeff0 = 3.5797 if legacy else 3.5523
    loglam = (coeff0 + 1e-4 * np.arange(n_pix)).astype(np.float32)
    flux, ivar = smooth_flux(n_pix, 20.0), smooth_ivar(n_pix)
    and_mask = np.full(n_pix, 1 << 2, np.int32)  # BADFLAT everywhere: informational
    bad = (10, 11, 12, 3000)
    and_mask[list(bad)] |= 1 << 18  # FULLREJECT: no usable data
    cols = ["flux", "loglam", "ivar", "and_mask", "or_mask", "wdisp", "sky", "model"]
    if not legacy:  # SDSS-V writes upper-case names and adds WRESL
        cols = [c.upper() for c in cols] + ["WRESL"]
    arrays = [flux, loglam, ivar, and_mask, and_mask, np.ones(n_pix, np.float32), flux * 0.1, flux]
    if not legacy:
        arrays.append(np.full(n_pix, 2.5, np.float32))
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column(name=name, format="J" if "mask" in name.lower() else "E", array=arr)
            for name, arr in zip(cols, arrays, strict=True)
        ],
        name="COADD",
    )
    ra, dec = 179.689293428, -0.454379058
    sn_median = np.array([3.5, 10.25, 15.5, 18.75, 9.0], np.float32)
    specobjid_col = (
        fits.Column(name="SPECOBJID", format="19A", array=np.array([SDSS_SPECOBJID]))
        if legacy
        else fits.Column(name="SPECOBJID", format="K", array=np.array([4_980_331_409_876_224_000]))
    )
    meta_columns = [
        fits.Column(
            name="PLATE" if legacy else "FIELD", format="J" if legacy else "K", array=[1059]
        ),
        fits.Column(name="MJD", format="J", array=[52618]),
        fits.Column(name="FIBERID", format="J", array=[100]),
        specobjid_col,
        fits.Column(name="RUN2D", format="6A", array=["26" if legacy else "v6_1_3"]),
        fits.Column(name="PLUG_RA", format="D", array=[ra]),
        fits.Column(name="PLUG_DEC", format="D", array=[dec]),
        fits.Column(name="CLASS", format="6A", array=["GALAXY"]),
        fits.Column(name="SUBCLASS", format="21A", array=["STARFORMING"]),
        fits.Column(name="Z", format="E", array=[0.1234]),
        fits.Column(name="Z_ERR", format="E", array=[2.5e-5]),
        fits.Column(name="ZWARNING", format="J" if legacy else "K", array=[4]),
        fits.Column(name="SN_MEDIAN", format="5E", array=sn_median.reshape(1, 5)),
        fits.Column(name="SN_MEDIAN_ALL", format="E", array=[12.0]),
    ]
    if not legacy:
        meta_columns.append(fits.Column(name="CATALOGID", format="K", array=[27021597764222417]))
    spobj = fits.BinTableHDU.from_columns(meta_columns, name=metadata_hdu)
    zline = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="LINENAME", format="13A", array=["H_alpha", "[O_III] 5007"]),
            fits.Column(name="LINEWAVE", format="D", array=[6564.61, 5008.24]),
            fits.Column(name="LINEAREA", format="E", array=[120.5, 30.25]),
        ],
        name="SPZLINE",
    )
    header = _header(
        [
            ("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"),
            ("PLATEID", 1059, "Current plate"),
            ("MJD", 52618, "MJD of observation"),
            ("RUN2D", "26" if legacy else "v6_1_3", "Spectro-2D reduction name"),
            ("PLUG_RA", ra, "RA of Target"),
            ("PLUG_DEC", dec, "DEC of Target"),
            ("RA", ra + 0.8, "RA of telescope boresight (deg)"),
            ("DEC", dec - 0.7, "DEC of telescope boresight (deg)"),
            ("COEFF0", float(coeff0), "Central wavelength (log10) of first pixel"),
            ("COEFF1", 1e-4, "Log10 dispersion per pixel"),
            ("VACUUM", True, "Wavelengths are in vacuum"),
        ]
    )
    hdul = fits.HDUList([fits.PrimaryHDU(header=header), coadd, spobj, zline])
    data = _to_bytes(hdul)
    specobjid = SDSS_SPECOBJID if legacy else "4980331409876224000"
    meta = {
        "survey": "sdss",
        "layout": "sdss_spec",
        "specobjid": specobjid,
        "ra": ra,
        "dec": dec,
        "class": "GALAXY",
        "subclass": "STARFORMING",
        "z": float(np.float32(0.1234)),
        "z_err": float(np.float32(2.5e-5)),
        "zwarning": 4,
        "snr_u": 3.5,
        "snr_g": 10.25,
        "snr_r": 15.5,
        "snr_i": 18.75,
        "snr_z": 9.0,
        "obsid": None,
        "data_release": "RUN2D 26" if legacy else "RUN2D v6_1_3",
    }
    name = f"spec-lite-{metadata_hdu.lower()}.fits"
    return _finish(
        name, "sdss_spec", data, 10.0 ** loglam.astype(np.float64), flux, ivar, bad, meta, gzipped
    )


def sdss_spspec(n_pix: int = 3850, gzipped: bool = False) -> ExampleFile:
    """SDSS DR7 spSpec: 4 x N image (flux, continuum-subtracted, sigma, mask), SPEC_CLN."""
    coeff0, coeff1 = 3.5800, 1e-4
    wavelength = 10.0 ** (coeff0 + coeff1 * np.arange(n_pix))
    flux = smooth_flux(n_pix, 30.0)
    sigma = np.full(n_pix, 2.0, np.float32)
    bad = (0, 1, 1500)
    sigma[list(bad)] = 0.0
    mask = np.zeros(n_pix, np.float32)
    mask[1600] = float(1 << 30)  # EMLINE: informative, not bad
    image = np.vstack([flux, flux - np.float32(30.0), sigma, mask])
    header = _header(
        [
            ("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"),
            ("NAME", "0266-51630-100", "Plate-MJD-fiber"),
            ("OBJID", "587727178470031503", "Photo object ID"),
            ("PLATEID", 266, "Plate ID"),
            ("MJD", 51630, "MJD of observation"),
            ("FIBERID", 100, "Fiber ID"),
            ("RAOBJ", 146.714203, "RA (J2000) of object"),
            ("DECOBJ", -1.041304, "DEC (J2000) of object"),
            ("RA", 146.0, "RA of telescope boresight"),
            ("DEC", -1.0, "DEC of telescope boresight"),
            ("Z", 1.5e-4, "Redshift"),
            ("Z_ERR", 1.0e-5, "Redshift error"),
            ("Z_CONF", 0.99, "Redshift confidence"),
            ("Z_STATUS", 4, "Redshift status"),
            ("Z_WARNIN", 0, "Redshift warning flags"),
            ("SPEC_CLN", 1, "Spectral classification: star"),
            ("SN_G", 22.5, "S/N in g"),
            ("SN_R", 30.25, "S/N in r"),
            ("SN_I", 28.0, "S/N in i"),
            ("COEFF0", coeff0, "Center wavelength (log10) of 1st pixel"),
            ("COEFF1", coeff1, "Log10 dispersion per pixel"),
        ]
    )
    lines = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="wave", format="E", array=[6564.6]),
            fits.Column(name="z", format="E", array=[1.5e-4]),
        ]
    )
    data = _to_bytes(fits.HDUList([fits.PrimaryHDU(image, header=header), lines]))
    ivar = np.zeros(n_pix, np.float32)
    ivar[sigma > 0] = 1.0 / sigma[sigma > 0].astype(np.float64) ** 2
    meta = {
        "survey": "sdss",
        "layout": "sdss_spspec",
        "data_release": "SDSS DR7",
        "class": "STAR",
        "subclass": None,
        "ra": 146.714203,
        "dec": -1.041304,
        "z": 1.5e-4,
        "z_err": 1.0e-5,
        "zwarning": 0,
        "snr_g": 22.5,
        "snr_r": 30.25,
        "snr_i": 28.0,
        "snr_u": None,
        "spec_cln": 1,
        "specobjid": str((266 << 50) | (100 << 38) | ((51630 - 50000) << 24) | (26 << 10)),
    }
    return _finish(
        "spSpec-51630-0266-100.fit", "sdss_spspec", data, wavelength, flux, ivar, bad, meta, gzipped
    )


def _finish(
    name: str,
    layout: str,
    data: bytes,
    wavelength: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    bad: tuple[int, ...],
    meta: dict[str, Any],
    gzipped: bool,
) -> ExampleFile:
    if gzipped:
        data = gzip.compress(data, mtime=0)
        name += ".gz"
    return ExampleFile(
        name, layout, data, np.asarray(wavelength, np.float64), flux, ivar, bad, meta
    )


EXAMPLE_BUILDERS: dict[str, Callable[..., ExampleFile]] = {
    "lamost_dr1": lamost_dr1,
    "lamost_image": lamost_image,
    "lamost_table": lamost_table,
    "sdss_spec_specobj": lambda **kw: sdss_spec("SPECOBJ", **kw),
    "sdss_spec_spall": lambda **kw: sdss_spec("SPALL", **kw),
    "sdss_spspec": sdss_spspec,
}


def all_examples(gzipped: bool | None = None) -> list[ExampleFile]:
    """Every layout, plain and gzip-compressed (or only one of the two)."""
    choices = (False, True) if gzipped is None else (gzipped,)
    return [build(gzipped=gz) for gz in choices for build in EXAMPLE_BUILDERS.values()]


def write_examples(directory: str, gzipped: bool | None = None) -> list[str]:
    """Write every example file into a local directory; return the paths."""
    import os

    os.makedirs(directory, exist_ok=True)
    paths = []
    for example in all_examples(gzipped):
        path = os.path.join(directory, example.name)
        with open(path, "wb") as handle:
            handle.write(example.data)
        paths.append(path)
    return paths
