"""String-keyed registry of survey readers: each an ``identify`` plus a ``read``.

A reader recognises its layout from HDU names, header keywords and column names,
never from the file name (real archives rename files by specObjID or object name).
Readers are tried in registration order, most specific first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from astropy.io import fits

from raysurvey.io.header import FastHeader
from raysurvey.io.spectrum import Spectrum


@dataclass(frozen=True)
class FitsFile:
    """An opened, structurally checked file as readers see it.

    Attributes
    ----------
    hdul : astropy.io.fits.HDUList
        Lazily loaded HDUs (touching ``hdul[1]`` reads only that far).
    header : FastHeader
        The primary header's values.
    n_hdus : int
        Number of HDUs, known from the structural walk without loading them.
    uri : str
        The name errors and ``meta["uri"]`` report.
    """

    hdul: fits.HDUList
    header: FastHeader
    n_hdus: int
    uri: str


@dataclass(frozen=True)
class SurveyReader:
    """One survey file layout.

    Attributes
    ----------
    name : str
        Registry key, also written to ``Spectrum.meta["layout"]``.
    survey : str
        ``"lamost"`` or ``"sdss"``.
    identify : callable
        ``identify(fits_file) -> bool``; cheap checks first, must not raise.
    read : callable
        ``read(fits_file, uri) -> Spectrum``; raises ``SpectrumReadError`` on bad content.
    description : str
        One line for ``raysurvey readers`` and the docs.
    """

    name: str
    survey: str
    identify: Callable[[FitsFile], bool]
    read: Callable[[FitsFile, str], Spectrum]
    description: str


_READERS: dict[str, SurveyReader] = {}


def register_reader(reader: SurveyReader) -> SurveyReader:
    """Add a reader; a name may be registered once."""
    if reader.name in _READERS:
        raise ValueError(f"reader {reader.name!r} is already registered")
    _READERS[reader.name] = reader
    return reader


def list_readers() -> list[SurveyReader]:
    """Registered readers in the order they are tried."""
    return list(_READERS.values())


def get_reader(name: str) -> SurveyReader:
    """The reader registered under ``name``."""
    try:
        return _READERS[name]
    except KeyError:
        raise KeyError(f"no reader {name!r}; known: {', '.join(_READERS)}") from None
