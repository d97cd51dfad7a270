"""FITS writers for synthetic spectra in the surveys' own layouts.

The layouts are the ones the readers accept (docs/formats.md): LAMOST DR2-DR8 5 x N
image, LAMOST DR9+ header-only primary plus one-row COADD table, SDSS spec-lite with
COADD, SPECOBJ (SDSS-I/II, lower-case columns, string SPECOBJID) or SPALL (upper-case
columns, int64 ids) and SPZLINE. Headers carry the keywords real files carry, with
the observing block of ``raysurvey.io.examples`` so file sizes and parse costs are
realistic. Bytes are assembled by ``fitsbytes`` from astropy-rendered cards and
astropy-built table headers. Output is deterministic: no timestamps, gzip mtime 0.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from raysurvey.io.examples import LAMOST_OBSERVING_CARDS
from raysurvey.synth.fitsbytes import (
    Card,
    bintable,
    primary_header_only,
    primary_image,
    render_cards,
    render_static,
)
from raysurvey.synth.observe import ObservedSpectrum

LAMOST_LAYOUTS = ("lamost_image", "lamost_table")
SDSS_HDUS = ("SPECOBJ", "SPALL")
_WCS_KEYS = {"CRVAL1", "CD1_1", "CRPIX1", "CTYPE1", "DC-FLAG"}


@dataclass(frozen=True)
class Labels:
    """Pipeline labels and ids written into a file (what the survey would publish)."""

    survey_class: str
    subclass: str | None
    z: float
    z_err: float
    zwarning: int
    ra: float
    dec: float
    obsid: int | None = None
    specobjid: int | None = None
    plate: int = 0
    mjd: int = 0
    fiberid: int = 0
    spid: int = 1
    planid: str = ""
    run2d: str = ""
    data_release: str = ""


def _finish(data: bytes, gzipped: bool) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0) if gzipped else data


def lamost_card_list(spec: ObservedSpectrum, labels: Labels, row_names: str | None) -> list[Card]:
    """Every primary-header card of a LAMOST file, in order."""
    name = f"spec-{labels.mjd}-{labels.planid}_sp{labels.spid:02d}-{labels.fiberid:03d}.fits"
    cards: list[Card] = [
        ("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
        ("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
    ]
    if row_names:
        cards.append(("EXTEN0", row_names, "Rows of the image"))
    cards += [
        ("FILENAME", name, "File name"),
        ("OBSID", labels.obsid, "Unique number ID of this spectrum"),
        ("DATA_V", labels.data_release, "Data version"),
        ("LMJD", labels.mjd, "Local Modified Julian Day"),
        ("MJD", labels.mjd, "Modified Julian Day"),
        ("PLANID", labels.planid, "Plan ID in use"),
        ("SPID", labels.spid, "Spectrograph ID"),
        ("FIBERID", labels.fiberid, "Fiber ID of Object"),
        ("DESIG", _designation(labels.ra, labels.dec), "Designation of LAMOST target"),
        ("RA", round(labels.ra, 6), "Right ascension of object (deg)"),
        ("DEC", round(labels.dec, 6), "Declination of object (deg)"),
        ("RA_OBS", round(labels.ra, 6), "Right ascension of fiber (deg)"),
        ("DEC_OBS", round(labels.dec, 6), "Declination of fiber (deg)"),
        ("CLASS", labels.survey_class, "Class of object"),
        ("SUBCLASS", labels.subclass or "Non", "Subclass of object"),
        ("Z", round(labels.z, 8), "Redshift of object"),
        ("Z_ERR", round(labels.z_err, 8), "Redshift error of object"),
        ("ZFLAG", "LASP", "Which method computes the redshift"),
        ("VERSPIPE", "v2.9.7", "Version of Pipeline"),
    ]
    for band, value in spec.snr.items():
        cards.append((f"SNR{band.upper()}", round(value, 2), f"Signal to noise ratio of {band}"))
    cards += [
        ("COEFF0", round(float(spec.loglam[0]), 8), "Central wavelength (log10) of first pixel"),
        ("COEFF1", 1e-4, "Log10 dispersion per pixel"),
        ("CRVAL1", round(float(spec.loglam[0]), 8), "Central wavelength (log10) of first pixel"),
        ("CD1_1", 1e-4, "Log10 dispersion per pixel"),
        ("CRPIX1", 1, "Starting pixel (1-indexed)"),
        ("CTYPE1", "LINEAR", ""),
        ("DC-FLAG", 1, "Log-linear flag"),
        ("VACUUM", True, "Wavelengths are in vacuum"),
    ]
    return cards + list(_STATIC_CARDS)


_STATIC_CARDS = tuple(c for c in LAMOST_OBSERVING_CARDS if c[0] not in _WCS_KEYS)


def _lamost_cards(spec: ObservedSpectrum, labels: Labels, row_names: str | None) -> str:
    dynamic = lamost_card_list(spec, labels, row_names)[: -len(_STATIC_CARDS)]
    return render_cards(dynamic) + render_static(_STATIC_CARDS)


def _designation(ra: float, dec: float) -> str:
    hours = ra / 15.0
    h, m = int(hours), int((hours % 1) * 60)
    s = ((hours * 60) % 1) * 60
    sign = "+" if dec >= 0 else "-"
    d_abs = abs(dec)
    d, dm = int(d_abs), int((d_abs % 1) * 60)
    ds = ((d_abs * 60) % 1) * 60
    return f"LAMOST J{h:02d}{m:02d}{s:05.2f}{sign}{d:02d}{dm:02d}{ds:04.1f}"


def write_lamost(
    spec: ObservedSpectrum, labels: Labels, layout: str, gzipped: bool, commas: bool = False
) -> bytes:
    """A LAMOST file: DR2-DR8 image (``lamost_image``) or DR9+ table (``lamost_table``).

    ``commas``: the image's row names as DR6-DR8 write them ("Flux, Inverse, ...").
    """
    wave = spec.wavelength.astype(np.float32)
    rows = [
        spec.flux,
        spec.ivar,
        wave,
        spec.andmask.astype(np.float32),
        spec.ormask.astype(np.float32),
    ]
    if layout == "lamost_image":
        separator = ", " if commas else " "
        row_names = separator.join(("Flux", "Inverse", "Wavelength", "Andmask", "Ormask"))
        body = _lamost_cards(spec, labels, row_names)
        return _finish(primary_image(body, np.vstack(rows)), gzipped)
    if layout != "lamost_table":
        raise ValueError(f"LAMOST layout must be one of {LAMOST_LAYOUTS}, not {layout!r}")
    n = spec.flux.size
    continuum = np.convolve(np.pad(spec.flux, 50, mode="edge"), np.ones(101) / 101, "valid")
    normalization = np.where(continuum > 0, spec.flux / np.maximum(continuum, 1e-30), 0)
    names = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK", "NORMALIZATION")
    columns = [
        (name, f"{n}E", np.asarray(arr, np.float32).reshape(1, -1))
        for name, arr in zip(names, [*rows, normalization], strict=True)
    ]
    primary = primary_header_only(_lamost_cards(spec, labels, None))
    return _finish(primary + bintable("COADD", columns, 1), gzipped)


def write_sdss(
    spec: ObservedSpectrum,
    labels: Labels,
    metadata_hdu: str,
    gzipped: bool,
    info_bits: int = 0,
    extnames: bool = True,
) -> bytes:
    """An SDSS spec-lite file: COADD + SPECOBJ (legacy) or SPALL (BOSS/SDSS-V) + SPZLINE.

    ``info_bits``: and-mask bits set on every pixel (informational SPPIXMASK bits, as
    some real files carry); ``extnames=False`` writes the tables without EXTNAME, as
    files made by other software do.
    """
    if metadata_hdu not in SDSS_HDUS:
        raise ValueError(f"metadata HDU must be one of {SDSS_HDUS}, not {metadata_hdu!r}")
    legacy = metadata_hdu == "SPECOBJ"
    n = spec.flux.size
    names = ["flux", "loglam", "ivar", "and_mask", "or_mask", "wdisp", "sky", "model"]
    arrays = [
        spec.flux,
        spec.loglam.astype(np.float32),
        spec.ivar,
        spec.andmask | info_bits,
        spec.ormask | info_bits,
        np.full(n, 1.05, np.float32),
        spec.sky,
        spec.flux,
    ]
    if not legacy:
        names = [name.upper() for name in names] + ["WRESL"]
        arrays.append((spec.wavelength / 2000.0).astype(np.float32))
    coadd = [
        (name, "J" if "mask" in name.lower() else "E", arr)
        for name, arr in zip(names, arrays, strict=True)
    ]
    sn = np.array([spec.snr[b] for b in "ugriz"], np.float32).reshape(1, 5)
    meta = [
        ("PLATE" if legacy else "FIELD", "J", [labels.plate]),
        ("MJD", "J", [labels.mjd]),
        ("FIBERID", "J", [labels.fiberid]),
        ("SPECOBJID", "20A", [str(labels.specobjid)])
        if legacy
        else ("SPECOBJID", "K", [labels.specobjid]),
        ("RUN2D", "8A", [labels.run2d]),
        ("PLUG_RA", "D", [labels.ra]),
        ("PLUG_DEC", "D", [labels.dec]),
        ("CLASS", "6A", [labels.survey_class]),
        ("SUBCLASS", "21A", [labels.subclass or ""]),
        ("Z", "E", [labels.z]),
        ("Z_ERR", "E", [labels.z_err]),
        ("ZWARNING", "J", [labels.zwarning]),
        ("SN_MEDIAN", "5E", sn),
        ("SN_MEDIAN_ALL", "E", [float(np.median(sn))]),
    ]
    zline = [
        ("LINENAME", "13A", ["H_alpha", "H_beta"]),
        ("LINEWAVE", "D", [6564.61, 4862.68]),
        ("LINEZ", "E", [labels.z, labels.z]),
    ]
    body = render_cards(
        [
            ("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"),
            ("PLATEID", labels.plate, "Current plate"),
            ("MJD", labels.mjd, "MJD of observation"),
            ("RUN2D", labels.run2d, "Spectro-2D reduction name"),
            ("PLUG_RA", round(labels.ra, 6), "RA of Target"),
            ("PLUG_DEC", round(labels.dec, 6), "DEC of Target"),
            (
                "COEFF0",
                round(float(spec.loglam[0]), 8),
                "Central wavelength (log10) of first pixel",
            ),
            ("COEFF1", 1e-4, "Log10 dispersion per pixel"),
            ("VACUUM", True, "Wavelengths are in vacuum"),
        ]
    )
    data = (
        primary_header_only(body)
        + bintable("COADD" if extnames else None, coadd, n)
        + bintable(metadata_hdu if extnames else None, meta, 1)
        + bintable("SPZLINE" if extnames else None, zline, 2)
    )
    return _finish(data, gzipped)


def product_cards(
    prodtype: str,
    telescope: str,
    labels: Labels,
    survey: str,
    snr: dict[str, float],
    specfile: str,
) -> list[Card]:
    """Primary-header cards of a 2D stripes or cutout file: the spectrum's ids and labels.

    The same ids as the matching 1D file (OBSID for LAMOST; for SDSS the specObjID as a
    string in ``SPECOBJ``, since an 8-character keyword cannot say SPECOBJID without
    HIERARCH), so products pair with spectra by id; ``SPECFILE`` names the 1D file
    only for people (readers never identify anything by file name).
    """
    cards: list[Card] = [
        ("PRODTYPE", prodtype, "Product type (raysurvey 2D products)"),
        ("TELESCOP", telescope, "Instrument that recorded this product"),
        ("ORIGIN", "raysurvey", "Synthetic release generator"),
        ("SURVEY", survey, "Survey of the matching 1D spectrum"),
        ("SPECFILE", specfile, "Matching 1D spectrum"),
    ]
    if labels.obsid is not None:
        cards.append(("OBSID", labels.obsid, "Unique number ID of this spectrum"))
    if labels.specobjid is not None:
        cards.append(("SPECOBJ", str(labels.specobjid), "SDSS specObjID"))
    cards += [
        ("RA", round(labels.ra, 6), "Right ascension of object (deg)"),
        ("DEC", round(labels.dec, 6), "Declination of object (deg)"),
        ("CLASS", labels.survey_class, "Pipeline class of the spectrum"),
        ("SUBCLASS", labels.subclass or "", "Pipeline subclass of the spectrum"),
        ("Z", round(labels.z, 8), "Pipeline redshift"),
        ("MJD", labels.mjd, "MJD of the spectrum"),
        ("FIBERID", labels.fiberid, "Fiber ID of object"),
    ]
    if survey == "lamost":
        cards += [
            ("PLANID", labels.planid, "Plan ID in use"),
            ("SPID", labels.spid, "Spectrograph ID"),
        ]
    else:
        cards.append(("PLATEID", labels.plate, "Plate ID"))
    for band in ("g", "r", "i"):
        value = snr.get(band, -9999.0)
        cards.append((f"SNR{band.upper()}", round(value, 2), f"S/N of the 1D spectrum, {band}"))
    return cards
