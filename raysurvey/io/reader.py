"""``read_spectrum``: any supported survey file, from a path, URI or bytes."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.header import FastHeader
from raysurvey.io.rawfits import LazyHDUList, RawFits
from raysurvey.io.registry import FitsFile, SurveyReader, get_reader, list_readers
from raysurvey.io.source import (
    DEFAULT_LIMITS,
    FitsStructure,
    SourceLimits,
    describe_source,
    load_fits_bytes,
)
from raysurvey.io.spectrum import Spectrum

#: Read engines: "fast" (headers and arrays straight from the checked bytes,
#: ``rawfits.py``, astropy for what it does not decode) and "astropy" (every file
#: through astropy, the reference the fast path is tested against).
ENGINES = ("fast", "astropy")
#: Environment variable choosing the default engine (``RAYSURVEY_READ_ENGINE=astropy``).
ENGINE_ENV = "RAYSURVEY_READ_ENGINE"


def default_engine() -> str:
    """The engine ``read_spectrum`` uses when none is given: $RAYSURVEY_READ_ENGINE or fast."""
    engine = os.environ.get(ENGINE_ENV, "").strip().lower() or "fast"
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={engine!r}: choose one of {ENGINES}")
    return engine


def identify_layout(fits_file: FitsFile) -> SurveyReader | None:
    """The first registered reader whose ``identify`` accepts this file."""
    for reader in list_readers():
        try:
            if reader.identify(fits_file):
                return reader
        except Exception:  # a malformed HDU is "not this layout", never a crash
            continue
    return None


@contextmanager
def open_fits_file(
    source: str | os.PathLike | bytes,
    *,
    uri: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
) -> Iterator[FitsFile]:
    """Fetch, check and open a FITS source the way the readers see it."""
    data, name, structure = load_fits_bytes(source, limits, name=uri)
    with _astropy_file(data, name, structure) as fits_file:
        yield fits_file


@contextmanager
def _astropy_file(data: bytes, name: str, structure: FitsStructure) -> Iterator[FitsFile]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdul:
            header = FastHeader(structure.primary_header, lambda: hdul[0].header)
            yield FitsFile(hdul, header, structure.n_hdus, name)


@contextmanager
def _raw_file(data: bytes, name: str, structure: FitsStructure) -> Iterator[FitsFile]:
    hdul = LazyHDUList(data)
    try:
        header = FastHeader(structure.primary_header, lambda: hdul[0].header)
        yield FitsFile(hdul, header, structure.n_hdus, name, RawFits(data, structure))
    finally:
        hdul.close()


def survey_picker(layout: str | None = None) -> Callable[[FitsFile], SurveyReader]:
    """``pick`` for ``read_typed``/``read_fast``: the reader named ``layout``, else the
    first that identifies the file, else ``unknown_layout``."""

    def pick(fits_file: FitsFile) -> SurveyReader:
        reader = get_reader(layout) if layout else identify_layout(fits_file)
        if reader is None:
            names = [hdu.name for hdu in fits_file.hdul]
            product = str(fits_file.header.get("PRODTYPE", "") or "").strip().upper()
            hint = (
                f" (a {product} product file, not a 1D spectrum: classify from the "
                "release's manifest, which names each spectrum's products)"
                if product in ("STRIPES", "CUTOUT")
                else ""
            )
            raise SpectrumReadError(
                fits_file.uri,
                ReadErrorReason.UNKNOWN_LAYOUT,
                f"no reader recognises HDUs {names}{hint}",
            )
        return reader

    return pick


def read_spectrum(
    source: str | os.PathLike | bytes,
    *,
    uri: str | None = None,
    layout: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
    engine: str | None = None,
) -> Spectrum:
    """Read one survey spectrum file of any supported layout.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        A local path, a ``file://`` or ``s3://`` URI (any fsspec protocol), or the
        file's bytes (plain or gzip-compressed).
    uri : str, optional
        Name to report for a ``bytes`` source (errors and ``meta["uri"]``).
    layout : str, optional
        Force a reader by registry name instead of identifying the layout.
    limits : SourceLimits
        Size caps against hostile input.
    engine : {"fast", "astropy"}, optional
        How the checked bytes are decoded (default ``$RAYSURVEY_READ_ENGINE`` or
        "fast"). Both give the same ``Spectrum`` and the same errors: the fast path
        hands any file it does not read without error to astropy, whose answer
        (record or ``SpectrumReadError``) is then the answer.

    Returns
    -------
    Spectrum

    Raises
    ------
    SpectrumReadError
        For every kind of bad input; no other exception escapes.
    """

    pick = survey_picker(layout)

    engine = engine or default_engine()
    if engine == "astropy":
        return read_typed(source, pick, uri=uri, limits=limits)
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: choose one of {ENGINES}")
    return read_fast(source, pick, uri=uri, limits=limits)


def read_fast(
    source: str | os.PathLike | bytes,
    pick: Callable[[FitsFile], SurveyReader] | None = None,
    *,
    uri: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
    fallback: bool = True,
) -> Spectrum:
    """``read_typed`` on the fast path: the same guards, then the reader's ``fast_read``
    on the raw bytes (``rawfits.py``).

    Where the fast path does not give a record (an encoding it leaves to astropy, a
    bad file, anything unexpected) the file is read again by the astropy path from
    the same checked bytes, and its outcome is the answer: the same record or the
    same ``SpectrumReadError`` as ``engine="astropy"``. ``fallback=False`` (tests)
    raises the fast path's own exception instead.
    """
    pick = pick or survey_picker()
    name = uri
    try:
        data, name, structure = load_fits_bytes(source, limits, name=uri)
        with _raw_file(data, name, structure) as fits_file:
            try:
                fits_file.raw.hdu(0)  # the primary header passes the same checks as others
                reader = pick(fits_file)
                fast_read = getattr(reader, "fast_read", None)
                if fast_read is None:
                    return reader.read(fits_file, name)
                spectrum = fast_read(fits_file, name)
                if not fallback and fits_file.hdul.opened:
                    raise RuntimeError("the fast path opened the file with astropy")
                return spectrum
            except Exception:
                if not fallback:
                    raise
        with _astropy_file(data, name, structure) as fits_file:
            return pick(fits_file).read(fits_file, name)
    except SpectrumReadError:
        raise
    except Exception as exc:  # keep the contract: one exception type for bad input
        raise _bad_input(source, name, exc) from None


def _bad_input(source, name: str | None, exc: Exception) -> SpectrumReadError:
    """An unexpected exception while reading, as the readers' one error type."""
    name = name or describe_source(source)
    return SpectrumReadError(name, ReadErrorReason.BAD_HEADER, f"{type(exc).__name__}: {exc}")


def read_typed(
    source: str | os.PathLike | bytes,
    pick: Callable[[FitsFile], Any],
    *,
    uri: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
):
    """Open ``source``, let ``pick(fits_file)`` choose a reader (or raise), read with it.

    The one place that keeps the readers' contract: ``SpectrumReadError`` for every
    kind of bad input, anything unexpected turned into ``bad_header`` naming the file.
    Survey spectra (``read_spectrum``) and 2D products (``io.products``) share it.
    """
    name = uri
    try:
        with open_fits_file(source, uri=uri, limits=limits) as fits_file:
            name = fits_file.uri
            return pick(fits_file).read(fits_file, name)
    except SpectrumReadError:
        raise
    except Exception as exc:  # keep the contract: one exception type for bad input
        raise _bad_input(source, name, exc) from None
