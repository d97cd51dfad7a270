"""Survey FITS readers: one registry, one ``Spectrum`` record, one error type.

>>> from raysurvey.io import read_spectrum
>>> spectrum = read_spectrum("s3://bucket/dr10/spec-58000-xxx.fits.gz")  # doctest: +SKIP
"""

# Reader modules register themselves on import, most specific layout first.
from raysurvey.io import lamost as _lamost  # noqa: F401
from raysurvey.io import sdss as _sdss  # noqa: F401
from raysurvey.io import sdss_dr7 as _sdss_dr7  # noqa: F401
from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.reader import identify_layout, open_fits_file, read_spectrum
from raysurvey.io.registry import SurveyReader, get_reader, list_readers
from raysurvey.io.source import SourceLimits
from raysurvey.io.spectrum import META_KEYS, Spectrum

__all__ = [
    "META_KEYS",
    "ReadErrorReason",
    "SourceLimits",
    "Spectrum",
    "SpectrumReadError",
    "SurveyReader",
    "get_reader",
    "identify_layout",
    "list_readers",
    "open_fits_file",
    "read_spectrum",
]
