"""String-keyed registries of file readers: each reader an ``identify`` plus a ``read``.

One shape serves both kinds of file: survey spectra (``SurveyReader``, returning a
``Spectrum``; registry ``SURVEY_READERS``) and the 2D products (``ProductReader`` in
``products.py``, returning ``Stripes`` or ``Cutout``; registry ``PRODUCT_READERS``).
A reader recognises its layout from HDU names, header keywords and column names,
never from the file name (real archives rename files by specObjID or object name).
Readers are tried in registration order, most specific first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from astropy.io import fits

from raysurvey.io.header import FastHeader
from raysurvey.io.rawfits import RawFits


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
    raw : RawFits or None
        The fast path's view of the same bytes (``engine="fast"``); None on the
        astropy path. ``hdul`` is then opened only if something asks for it.
    """

    hdul: fits.HDUList
    header: FastHeader
    n_hdus: int
    uri: str
    raw: RawFits | None = None

    def column_names(self, index: int) -> set[str]:
        """Upper-case column names of HDU ``index`` from its TTYPEn keywords (empty
        when it is not a binary table); from the raw header on the fast path."""
        if self.raw is not None:
            return self.raw.hdu(index).column_names()
        return header_column_names(self.hdul[index])

    def primary_data(self):
        """The primary HDU's data array (None when it has none)."""
        if self.raw is not None:
            return self.raw.hdu(0).image()
        return self.hdul[0].data


@dataclass(frozen=True)
class Reader:
    """One file layout.

    Attributes
    ----------
    name : str
        Registry key, also written to the record's ``meta["layout"]``.
    kind : str
        What the layout holds: the survey (``"lamost"``, ``"sdss"``) of a spectrum
        reader, the product (``"stripes"``, ``"cutout"``) of a product reader.
    identify : callable
        ``identify(fits_file) -> bool``; cheap checks first, must not raise.
    read : callable
        ``read(fits_file, uri) -> record``; raises ``SpectrumReadError`` on bad content.
    description : str
        One line for ``raysurvey readers`` and the docs.
    fast_read : callable, optional
        ``fast_read(fits_file, uri) -> record`` from ``fits_file.raw`` (the fast
        path); raises ``rawfits.Unsupported`` for encodings it leaves to ``read``.
        None: the layout is always read with ``read``.
    """

    name: str
    kind: str
    identify: Callable[[FitsFile], bool]
    read: Callable[[FitsFile, str], Any]
    description: str
    fast_read: Callable[[FitsFile, str], Any] | None = None

    def identifies(self, fits_file: FitsFile) -> bool:
        """``identify``, with any exception read as "not this layout", never a crash."""
        try:
            return bool(self.identify(fits_file))
        except Exception:  # a malformed HDU is "not this layout"
            return False


class SurveyReader(Reader):
    """A survey spectrum layout; ``kind`` is the survey, ``read`` returns a ``Spectrum``."""

    @property
    def survey(self) -> str:
        return self.kind


def header_column_names(hdu: Any) -> set[str]:
    """Upper-case column names of an astropy binary-table HDU from its TTYPEn keywords.

    Cheap enough for ``identify``: building astropy's column definitions costs more
    than reading the table's data.
    """
    if not isinstance(hdu, fits.BinTableHDU):
        return set()
    header = hdu.header
    count = int(header.get("TFIELDS", 0))
    return {str(header.get(f"TTYPE{i}", "")).strip().upper() for i in range(1, count + 1)}


R = TypeVar("R", bound=Reader)


class Registry(Generic[R]):
    """Readers by name, in registration order (the order ``identify`` is tried)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._readers: dict[str, R] = {}

    def register(self, reader: R) -> R:
        """Add a reader; a name may be registered once."""
        if reader.name in self._readers:
            raise ValueError(f"{self.what} {reader.name!r} is already registered")
        self._readers[reader.name] = reader
        return reader

    def list(self, kind: str | None = None) -> list[R]:
        """Registered readers (of one kind, if given) in the order they are tried."""
        return [r for r in self._readers.values() if kind is None or r.kind == kind]

    def get(self, name: str) -> R:
        """The reader registered under ``name``."""
        try:
            return self._readers[name]
        except KeyError:
            known = ", ".join(self._readers)
            raise KeyError(f"no {self.what} {name!r}; known: {known}") from None

    def identify(self, fits_file: FitsFile, kind: str | None = None) -> R | None:
        """The first reader (of one kind, if given) that identifies this file, else None."""
        return next((r for r in self.list(kind) if r.identifies(fits_file)), None)


SURVEY_READERS: Registry[SurveyReader] = Registry("reader")


def register_reader(reader: SurveyReader) -> SurveyReader:
    """Add a survey reader; a name may be registered once."""
    return SURVEY_READERS.register(reader)


def list_readers() -> list[SurveyReader]:
    """Registered survey readers in the order they are tried."""
    return SURVEY_READERS.list()


def get_reader(name: str) -> SurveyReader:
    """The survey reader registered under ``name``."""
    return SURVEY_READERS.get(name)
