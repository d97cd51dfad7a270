"""``read_spectrum``: any supported survey file, from a path, URI or bytes."""

from __future__ import annotations

import io
import os
import warnings

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError
from raysurvey.io.registry import SurveyReader, get_reader, list_readers
from raysurvey.io.source import DEFAULT_LIMITS, SourceLimits, load_fits_bytes
from raysurvey.io.spectrum import Spectrum


def identify_layout(hdul: fits.HDUList) -> SurveyReader | None:
    """The first registered reader whose ``identify`` accepts this HDU list."""
    for reader in list_readers():
        try:
            if reader.identify(hdul):
                return reader
        except Exception:  # a malformed HDU is "not this layout", never a crash
            continue
    return None


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
    data, name = load_fits_bytes(source, limits, name=uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdul:
                reader = get_reader(layout) if layout else identify_layout(hdul)
                if reader is None:
                    names = [hdu.name for hdu in hdul]
                    raise SpectrumReadError(
                        name, ReadErrorReason.UNKNOWN_LAYOUT, f"no reader recognises HDUs {names}"
                    )
                return reader.read(hdul, name)
    except SpectrumReadError as exc:
        if exc.uri != name:  # readers were given `name`; keep errors consistent
            raise SpectrumReadError(name, exc.reason, exc.message) from None
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise SpectrumReadError(
            name, ReadErrorReason.BAD_HEADER, f"{type(exc).__name__}: {exc}"
        ) from None
    except Exception as exc:  # keep the contract: one exception type for bad input
        raise SpectrumReadError(
            name, ReadErrorReason.BAD_HEADER, f"{type(exc).__name__}: {exc}"
        ) from None
