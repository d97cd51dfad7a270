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
from raysurvey.io.registry import FitsFile, SurveyReader, get_reader, list_readers
from raysurvey.io.source import DEFAULT_LIMITS, SourceLimits, describe_source, load_fits_bytes
from raysurvey.io.spectrum import Spectrum


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdul:
            header = FastHeader(structure.primary_header, lambda: hdul[0].header)
            yield FitsFile(hdul, header, structure.n_hdus, name)


def read_spectrum(
    source: str | os.PathLike | bytes,
    *,
    uri: str | None = None,
    layout: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
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

    Returns
    -------
    Spectrum

    Raises
    ------
    SpectrumReadError
        For every kind of bad input; no other exception escapes.
    """

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

    return read_typed(source, pick, uri=uri, limits=limits)


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
        name = name or describe_source(source)
        raise SpectrumReadError(
            name, ReadErrorReason.BAD_HEADER, f"{type(exc).__name__}: {exc}"
        ) from None
