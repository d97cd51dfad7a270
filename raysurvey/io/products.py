"""The 2D product readers' registry (stripes, cutouts) and the helpers they share.

Product readers have the survey readers' shape (``registry.Reader``: ``identify`` +
``read``) in a registry of their own, since they return other records (``Stripes``,
``Cutout``) than a ``Spectrum``; the same rules hold: a reader recognises its layout
from the primary header's ``PRODTYPE`` and the HDU names, never from the file name;
sources go through the same fetch, size caps and structural walk (``source.py``);
every bad input is a ``SpectrumReadError``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from astropy.io import fits

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.fitsutil import header_value, normalise_class, require_hdu
from raysurvey.io.reader import read_typed
from raysurvey.io.registry import FitsFile, Reader, Registry
from raysurvey.io.source import DEFAULT_LIMITS, SourceLimits


class ProductReader(Reader):
    """A 2D product layout; ``kind`` is the product (``"stripes"`` or ``"cutout"``),
    ``read`` returns its record (``Stripes``, ``Cutout``)."""

    @property
    def product(self) -> str:
        return self.kind


PRODUCT_READERS: Registry[ProductReader] = Registry("product reader")


def register_product_reader(reader: ProductReader) -> ProductReader:
    """Add a product reader; a name may be registered once."""
    return PRODUCT_READERS.register(reader)


def list_product_readers(product: str | None = None) -> list[ProductReader]:
    """Registered product readers (of one product, if given) in the order they are tried."""
    return PRODUCT_READERS.list(product)


def get_product_reader(name: str) -> ProductReader:
    """The product reader registered under ``name``."""
    return PRODUCT_READERS.get(name)


def prodtype(fits_file: FitsFile) -> str:
    """The primary header's PRODTYPE, upper-cased ('' when absent)."""
    return str(fits_file.header.get("PRODTYPE", "") or "").strip().upper()


def hdu_names(fits_file: FitsFile) -> set[str]:
    """Upper-case EXTNAMEs of every HDU (loads the headers, not the data)."""
    return {str(hdu.name).upper() for hdu in fits_file.hdul}


def image_hdu(fits_file: FitsFile, extname: str, uri: str, ndim: int) -> tuple[Any, np.ndarray]:
    """(HDU, float32 data) of a required image extension with ``ndim`` axes.

    ``missing_hdu`` when absent; ``shape_mismatch`` when it is a table, holds no data
    or has another number of axes. Integer images (raw ADU with BZERO/BSCALE) are
    scaled by astropy and returned as float32.
    """
    hdu = require_hdu(fits_file.hdul, extname, uri)
    if not isinstance(hdu, fits.ImageHDU):
        raise SpectrumReadError(
            uri,
            ReadErrorReason.SHAPE_MISMATCH,
            f"HDU {extname} is a {type(hdu).__name__}, not an image",
        )
    data = hdu.data
    if data is None or data.ndim != ndim:
        shape = None if data is None else data.shape
        raise SpectrumReadError(
            uri,
            ReadErrorReason.SHAPE_MISMATCH,
            f"HDU {extname} must be a {ndim}D image, got shape {shape}",
        )
    return hdu, np.array(data, dtype=np.float32)


def checked_image(
    fits_file: FitsFile, extname: str, uri: str, min_shape: tuple[int, ...]
) -> tuple[Any, np.ndarray]:
    """(HDU, float32 data) of a required image at least ``min_shape`` in every axis, with
    at least one finite pixel (``shape_mismatch``, ``no_valid_flux`` otherwise)."""
    hdu, image = image_hdu(fits_file, extname, uri, ndim=len(min_shape))
    if any(n < least for n, least in zip(image.shape, min_shape, strict=True)):
        need = " x ".join(map(str, min_shape))
        raise SpectrumReadError(
            uri,
            ReadErrorReason.SHAPE_MISMATCH,
            f"HDU {extname} is {' x '.join(map(str, image.shape))}; need >= {need}",
        )
    if not np.isfinite(image).any():
        raise SpectrumReadError(
            uri, ReadErrorReason.NO_VALID_FLUX, f"HDU {extname} has no finite pixel"
        )
    return hdu, image


def optional_image(fits_file: FitsFile, extname: str, uri: str, shape: tuple) -> np.ndarray | None:
    """An optional image extension of a given shape (None when absent)."""
    if extname not in hdu_names(fits_file):
        return None
    _, data = image_hdu(fits_file, extname, uri, len(shape))
    if data.shape != shape:
        raise SpectrumReadError(
            uri,
            ReadErrorReason.SHAPE_MISMATCH,
            f"HDU {extname} has shape {data.shape}, expected {shape}",
        )
    return data


#: Primary-header keywords of both products -> meta keys.
_META_KEYWORDS = {
    "obsid": ("OBSID", int),
    "ra": ("RA", float),
    "dec": ("DEC", float),
    "subclass": ("SUBCLASS", str),
    "z": ("Z", float),
    "snr_g": ("SNRG", float),
    "snr_r": ("SNRR", float),
    "snr_i": ("SNRI", float),
    "mjd": ("MJD", int),
    "fiberid": ("FIBERID", int),
    "specfile": ("SPECFILE", str),
}


def product_meta(header: Any, layout: str, uri: str) -> dict[str, Any]:
    """Ids and labels from a product's primary header (None where absent or -9999)."""
    meta: dict[str, Any] = {"layout": layout, "uri": uri}
    survey = header_value(header, "SURVEY", kind=str)
    meta["survey"] = survey.lower() if survey else None
    for key, (keyword, kind) in _META_KEYWORDS.items():
        meta[key] = header_value(header, keyword, kind=kind)
    specobjid = header_value(header, "SPECOBJ", "SPECOBJID", kind=str)
    meta["specobjid"] = specobjid
    meta["class"] = normalise_class(header.get("CLASS"))
    return meta


def read_product(
    source: str | os.PathLike | bytes,
    product: str,
    *,
    uri: str | None = None,
    layout: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
) -> Any:
    """Read one product file with the first reader of ``product`` that identifies it.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The file: a local path, any fsspec URI (``s3://``...) or its bytes, plain or gzip.
    product : str
        ``"stripes"`` or ``"cutout"``: the readers to try.
    uri : str, optional
        For a ``bytes`` source, the name errors and ``meta["uri"]`` report.
    layout : str, optional
        A product reader's registry name, to use it without identifying the file.
    limits : SourceLimits
        Size caps against hostile input.

    Returns
    -------
    Stripes or Cutout
        The record of ``product``.

    Raises
    ------
    SpectrumReadError
        For every kind of bad input: a valid FITS file of another kind (a survey
        spectrum, the other product) is ``unknown_layout``; anything unexpected becomes
        ``bad_header``, so no other exception escapes.
    """

    def pick(fits_file: FitsFile) -> ProductReader:
        reader = (
            get_product_reader(layout) if layout else PRODUCT_READERS.identify(fits_file, product)
        )
        if reader is not None:
            return reader
        found = prodtype(fits_file) or "none"
        names = [hdu.name for hdu in fits_file.hdul]
        raise SpectrumReadError(
            fits_file.uri,
            ReadErrorReason.UNKNOWN_LAYOUT,
            f"not a {product} file (PRODTYPE {found}, HDUs {names})",
        )

    return read_typed(source, pick, uri=uri, limits=limits)
