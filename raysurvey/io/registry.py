"""String-keyed registry of survey readers: each an ``identify`` plus a ``read``.

A reader recognises its layout from HDU names, header keywords and column names,
never from the file name (real archives rename files by specObjID or object name).
Readers are tried in registration order, most specific first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from astropy.io import fits

from raysurvey.io.spectrum import Spectrum


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
        ``identify(hdul) -> bool``; must not raise on files of other layouts.
    read : callable
        ``read(hdul, uri) -> Spectrum``; raises ``SpectrumReadError`` on bad content.
    description : str
        One line for ``raysurvey readers`` and the docs.
    """

    name: str
    survey: str
    identify: Callable[[fits.HDUList], bool]
    read: Callable[[fits.HDUList, str], Spectrum]
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
