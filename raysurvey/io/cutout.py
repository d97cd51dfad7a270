"""Photometric g, r, i cutouts, the image input of MAC-Net (layout: docs/formats.md).

The layout an SDSS ImageCutout export could be stored in, and the one
``raysurvey synth --with-photometry`` writes:

- primary HDU without data: ``PRODTYPE = 'CUTOUT'``, the spectrum's ids and labels;
- image HDUs ``G``, ``R``, ``I``: float [H, W] of one shape (64 x 64 from raysurvey),
  ``BUNIT`` (nanomaggy), ``PIXSCALE`` (arcsec; else from the CD matrix), ``SEEING``
  (PSF FWHM, arcsec), optionally ``MAG``, ``SKYLEVEL``, ``SKYSIG`` and a TAN WCS.

Identified by ``PRODTYPE = 'CUTOUT'`` or, without PRODTYPE, by HDUs named G, R and I;
never by the file name.
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
    prodtype,
    product_meta,
    read_product,
    register_product_reader,
)
from raysurvey.io.registry import FitsFile

PRODUCT = "cutout"
BANDS = ("g", "r", "i")
MIN_SIZE = 8


@dataclass
class Cutout:
    """g, r, i images of one object.

    Attributes
    ----------
    gri : numpy.ndarray
        float32 [3, H, W] in g, r, i order (nanomaggies in files raysurvey writes).
    bands : tuple of str
        ``("g", "r", "i")``.
    pixscale : float
        Arcsec per pixel.
    seeing : dict
        PSF FWHM (arcsec) per band, None where the file does not say.
    meta : dict
        Ids and labels as for stripes, plus ``bunit``, ``mag_<band>``,
        ``skylevel_<band>``, ``skysig_<band>`` and, in synthetic files, ``morph``.
    """

    gri: np.ndarray
    pixscale: float
    seeing: dict[str, float | None]
    meta: dict[str, Any] = field(default_factory=dict)
    bands: tuple[str, ...] = BANDS


def read_cutout(source: str | os.PathLike | bytes, **options: Any) -> Cutout:
    """Read one g, r, i cutout file from a path, URI or bytes: ``read_product(source,
    "cutout", uri=..., limits=...)``, whose docstring has the options and the errors (a
    survey spectrum or stripes file: ``unknown_layout``)."""
    return read_product(source, PRODUCT, **options)


def identify(f: FitsFile) -> bool:
    kind = prodtype(f)
    if kind:
        return kind == "CUTOUT"
    return {"G", "R", "I"} <= hdu_names(f)


def _pixscale(header: Any, primary: Any) -> float | None:
    scale = header_value(header, "PIXSCALE", kind=float) or header_value(
        primary, "PIXSCALE", kind=float
    )
    if scale is not None:
        return scale
    cd = [header_value(header, k, kind=float) for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")]
    if cd[0] is not None and cd[3] is not None:
        det = cd[0] * cd[3] - (cd[1] or 0.0) * (cd[2] or 0.0)
        return math.sqrt(abs(det)) * 3600.0 if det else None
    return None


def read(f: FitsFile, uri: str) -> Cutout:
    meta = product_meta(f.header, "cutout", uri)
    meta["morph"] = header_value(f.header, "MORPH", kind=str)
    images, seeing, scales = [], {}, []
    shape = None
    for band in BANDS:
        extname = band.upper()
        hdu, image = checked_image(f, extname, uri, (MIN_SIZE, MIN_SIZE))
        if shape is not None and image.shape != shape:
            raise SpectrumReadError(
                uri,
                ReadErrorReason.SHAPE_MISMATCH,
                f"HDU {extname} is {image.shape}, HDU G is {shape}: bands must align",
            )
        shape = image.shape
        header = hdu.header
        scale = _pixscale(header, f.header)
        if scale is None:
            raise SpectrumReadError(
                uri,
                ReadErrorReason.MISSING_KEYWORD,
                f"HDU {extname} has no PIXSCALE and no CD matrix",
            )
        scales.append(scale)
        images.append(image)
        seeing[band] = header_value(header, "SEEING", kind=float)
        meta.setdefault("bunit", header_value(header, "BUNIT", kind=str))
        meta[f"mag_{band}"] = header_value(header, "MAG", kind=float)
        meta[f"skylevel_{band}"] = header_value(header, "SKYLEVEL", kind=float)
        meta[f"skysig_{band}"] = header_value(header, "SKYSIG", kind=float)
    return Cutout(gri=np.stack(images), pixscale=float(scales[0]), seeing=seeing, meta=meta)


GRI_CUTOUT = register_product_reader(
    ProductReader("cutout", PRODUCT, identify, read, "g, r, i cutouts: G, R, I images")
)
