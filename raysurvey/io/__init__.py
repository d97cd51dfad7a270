"""Survey FITS readers: one registry, one ``Spectrum`` record, one error type.

2D products (stripes, g, r, i cutouts) have readers of their own in a second registry
(``products.py``): ``read_stripes`` and ``read_cutout``.

>>> from raysurvey.io import read_spectrum
>>> spectrum = read_spectrum("s3://bucket/dr10/spec-58000-xxx.fits.gz")  # doctest: +SKIP
"""

# Reader modules register themselves on import, most specific layout first.
from raysurvey.io import lamost as _lamost  # noqa: F401
from raysurvey.io import sdss as _sdss  # noqa: F401
from raysurvey.io import sdss_dr7 as _sdss_dr7  # noqa: F401
from raysurvey.io.cutout import Cutout, read_cutout
from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.products import ProductReader, get_product_reader, list_product_readers
from raysurvey.io.reader import identify_layout, open_fits_file, read_spectrum
from raysurvey.io.registry import SurveyReader, get_reader, list_readers
from raysurvey.io.source import SourceLimits
from raysurvey.io.spectrum import META_KEYS, Spectrum
from raysurvey.io.stripes import Stripes, read_stripes

__all__ = [
    "META_KEYS",
    "Cutout",
    "ProductReader",
    "ReadErrorReason",
    "SourceLimits",
    "Spectrum",
    "SpectrumReadError",
    "Stripes",
    "SurveyReader",
    "get_product_reader",
    "get_reader",
    "identify_layout",
    "list_product_readers",
    "list_readers",
    "open_fits_file",
    "read_cutout",
    "read_spectrum",
    "read_stripes",
]
