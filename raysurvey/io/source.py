"""Turning a path, URI or bytes into checked FITS bytes, before astropy sees them.

Every guard against hostile input lives here, so that each failure has one reason
code: the file is fetched through fsspec (local paths, ``file://``, ``s3://``),
capped in size, gunzipped with a cap on the inflated size (a gzip bomb stops at the
cap, not at the end of memory), and walked header by header to check that it is a
complete FITS file with headers of sane size before astropy parses it.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass

import fsspec

from raysurvey.io.errors import ReadErrorReason, SpectrumReadError

FITS_BLOCK = 2880
CARD = 80
GZIP_MAGIC = b"\x1f\x8b"
BYTES_SOURCE = "<bytes>"


@dataclass(frozen=True)
class SourceLimits:
    """Caps that keep one hostile file from taking a worker down.

    Real survey spectra are 0.1-2 MB (SDSS full spec files with per-exposure HDUs up
    to ~10 MB); the defaults leave an order of magnitude of headroom.
    """

    max_file_bytes: int = 256 * 2**20
    max_inflated_bytes: int = 256 * 2**20
    max_header_cards: int = 4000
    max_hdus: int = 64


DEFAULT_LIMITS = SourceLimits()


def describe_source(source: str | os.PathLike | bytes) -> str:
    """The name a source is reported under in errors and catalogs."""
    if isinstance(source, bytes | bytearray | memoryview):
        return BYTES_SOURCE
    return os.fspath(source)


def fetch_bytes(source: str | os.PathLike, limits: SourceLimits = DEFAULT_LIMITS) -> bytes:
    """Read a whole file from any fsspec URI, refusing files over the size cap."""
    uri = os.fspath(source)
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        size = fs.size(path)
        if size is not None and size > limits.max_file_bytes:
            raise SpectrumReadError(
                uri, ReadErrorReason.TOO_LARGE, f"{size} bytes > cap {limits.max_file_bytes}"
            )
        with fs.open(path, "rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except SpectrumReadError:
        raise
    except FileNotFoundError as exc:
        raise SpectrumReadError(
            uri, ReadErrorReason.NOT_FOUND, str(exc) or "no such file"
        ) from None
    except IsADirectoryError:
        raise SpectrumReadError(uri, ReadErrorReason.NOT_FOUND, "is a directory") from None
    except Exception as exc:  # network, permissions, unknown protocol
        raise SpectrumReadError(
            uri, ReadErrorReason.IO_ERROR, f"{type(exc).__name__}: {exc}"
        ) from None
    if len(data) > limits.max_file_bytes:
        raise SpectrumReadError(
            uri, ReadErrorReason.TOO_LARGE, f"more than {limits.max_file_bytes} bytes"
        )
    return data


def gunzip_capped(data: bytes, uri: str, limits: SourceLimits = DEFAULT_LIMITS) -> bytes:
    """Inflate (possibly multi-member) gzip data, stopping at the inflated-size cap."""
    out = bytearray()
    remaining = data
    while remaining:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(remaining, limits.max_inflated_bytes + 1 - len(out))
        except zlib.error as exc:
            raise SpectrumReadError(uri, ReadErrorReason.BAD_GZIP, str(exc)) from None
        out += chunk
        if len(out) > limits.max_inflated_bytes or inflater.unconsumed_tail:
            raise SpectrumReadError(
                uri,
                ReadErrorReason.TOO_LARGE,
                f"gzip inflates past the cap of {limits.max_inflated_bytes} bytes",
            )
        if not inflater.eof:
            raise SpectrumReadError(uri, ReadErrorReason.BAD_GZIP, "gzip stream ends early")
        remaining = inflater.unused_data
        if remaining and not remaining.startswith(GZIP_MAGIC):
            break  # trailing garbage after the last member, as gzip(1) tolerates
    return bytes(out)


_END_CARD = re.compile(rb"END {77}")
_INT_VALUE = re.compile(rb"^\s*([-+]?\d+)")


def _find_end(data: bytes, offset: int, stop: int) -> int | None:
    """Offset just past the END card of the header starting at ``offset``, if any."""
    for match in _END_CARD.finditer(data, offset, stop):
        if (match.start() - offset) % CARD == 0:
            return match.end()
    return None


def find_card(header_bytes: bytes, key: str) -> bytes | None:
    """Raw value field (columns 11-80) of the first ``KEY = `` card, or None.

    A substring search checked for card alignment: far cheaper than splitting a
    header of a hundred cards into Python objects to look up a few of them.
    """
    needle = key.encode("ascii").ljust(8) + b"= "
    start = 0
    while (at := header_bytes.find(needle, start)) >= 0:
        if at % CARD == 0:
            return header_bytes[at + 10 : at + CARD]
        start = at + 1
    return None


def header_cards(header_bytes: bytes) -> dict[str, bytes]:
    """Keyword -> raw value field of every value card (first one wins)."""
    cards: dict[str, bytes] = {}
    for i in range(0, len(header_bytes), CARD):
        card = header_bytes[i : i + CARD]
        if card[8:10] == b"= ":
            cards.setdefault(card[:8].rstrip().decode("ascii", "replace"), card[10:])
    return cards


@dataclass(frozen=True)
class HduSpan:
    """Where one HDU lies in the checked bytes (offsets into the uncompressed file)."""

    header_start: int
    header_stop: int  # just past the END card
    data_start: int
    data_bytes: int  # without the padding to the 2880-byte block


@dataclass(frozen=True)
class FitsStructure:
    """What the structural walk learned: HDU count, the primary header's bytes and
    every HDU's span (so the fast read path finds headers and data without a parse)."""

    n_hdus: int
    primary_header: bytes
    hdus: tuple[HduSpan, ...] = ()


def check_fits_structure(
    data: bytes, uri: str, limits: SourceLimits = DEFAULT_LIMITS
) -> FitsStructure:
    """Walk the HDUs of a FITS byte string before astropy parses it.

    Only the structural keywords are interpreted (BITPIX, NAXISn, PCOUNT, GCOUNT):
    cheap next to a full parse, and enough to tell a truncated file, a header without
    END or a runaway header apart. The primary header's raw cards come back too, so
    readers can take labels from them without a second parse (``FastHeader``).
    """
    if not data.startswith(b"SIMPLE  ="):
        snippet = data[:40].decode("ascii", "replace").strip()
        kind = "HTML page" if b"<html" in data[:1024].lower() else f"starts {snippet!r}"
        raise SpectrumReadError(uri, ReadErrorReason.NOT_FITS, f"not a FITS file ({kind})")
    offset, n_hdus = 0, 0
    primary = b""
    spans: list[HduSpan] = []
    max_header_bytes = limits.max_header_cards * CARD
    while offset < len(data):
        if n_hdus >= limits.max_hdus:
            raise SpectrumReadError(
                uri, ReadErrorReason.TOO_LARGE, f"more than {limits.max_hdus} HDUs"
            )
        if n_hdus > 0 and not data[offset : offset + 8].strip(b"\0 "):
            break  # zero or blank padding after the last HDU, seen in real archives
        stop = min(len(data), offset + max_header_bytes)
        end_at = _find_end(data, offset, stop)
        if end_at is None:
            if stop - offset >= max_header_bytes:
                raise SpectrumReadError(
                    uri,
                    ReadErrorReason.TOO_LARGE,
                    f"header of HDU {n_hdus} longer than {limits.max_header_cards} cards",
                )
            raise SpectrumReadError(
                uri, ReadErrorReason.TRUNCATED, f"header of HDU {n_hdus} has no END"
            )
        header_bytes = data[offset:end_at]
        if n_hdus == 0:
            primary = header_bytes
        header_end = offset + -(-(end_at - offset) // FITS_BLOCK) * FITS_BLOCK
        data_bytes = _data_size(header_bytes, uri, n_hdus)
        padded = -(-data_bytes // FITS_BLOCK) * FITS_BLOCK
        if header_end + data_bytes > len(data):
            raise SpectrumReadError(
                uri,
                ReadErrorReason.TRUNCATED,
                f"HDU {n_hdus} needs {data_bytes} data bytes, file ends "
                f"{header_end + data_bytes - len(data)} bytes short",
            )
        spans.append(HduSpan(offset, end_at, header_end, data_bytes))
        offset = header_end + padded
        n_hdus += 1
    return FitsStructure(n_hdus, primary, tuple(spans))


def _structural(header_bytes: bytes, key: str, default: int | None = None) -> int:
    raw = find_card(header_bytes, key)
    if raw is None:
        if default is None:
            raise KeyError(key)
        return default
    match = _INT_VALUE.match(raw)
    if not match:
        raise ValueError(f"{key} = {raw[:20]!r}")
    return int(match.group(1))


def _data_size(header_bytes: bytes, uri: str, hdu: int) -> int:
    try:
        bitpix = _structural(header_bytes, "BITPIX")
        naxis = _structural(header_bytes, "NAXIS")
        if not 0 <= naxis <= 999:
            raise ValueError(f"NAXIS = {naxis}")
        dims = [_structural(header_bytes, f"NAXIS{i}") for i in range(1, naxis + 1)]
        pcount = _structural(header_bytes, "PCOUNT", 0)
        gcount = _structural(header_bytes, "GCOUNT", 1)
    except (KeyError, ValueError) as exc:
        raise SpectrumReadError(
            uri, ReadErrorReason.BAD_HEADER, f"HDU {hdu}: bad or missing structural keyword {exc}"
        ) from None
    if naxis == 0:
        return 0
    n_elements = 1
    for dim in dims:
        if dim < 0:
            raise SpectrumReadError(uri, ReadErrorReason.BAD_HEADER, f"HDU {hdu}: negative NAXIS")
        n_elements *= dim
    return abs(bitpix) // 8 * gcount * (pcount + n_elements)


def load_fits_bytes(
    source: str | os.PathLike | bytes,
    limits: SourceLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> tuple[bytes, str, FitsStructure]:
    """Checked, uncompressed FITS bytes, the name to report them under, their structure.

    ``name`` overrides the reported name (useful for bytes fetched elsewhere).
    """
    is_bytes = isinstance(source, bytes | bytearray | memoryview)
    uri = name or describe_source(source)
    try:
        data = bytes(source) if is_bytes else fetch_bytes(source, limits)
    except SpectrumReadError as exc:
        if exc.uri == uri:
            raise
        raise SpectrumReadError(uri, exc.reason, exc.message) from None
    if len(data) > limits.max_file_bytes:
        raise SpectrumReadError(uri, ReadErrorReason.TOO_LARGE, f"{len(data)} bytes")
    if not data:
        raise SpectrumReadError(uri, ReadErrorReason.EMPTY, "zero bytes")
    if data.startswith(GZIP_MAGIC):
        data = gunzip_capped(data, uri, limits)
        if not data:
            raise SpectrumReadError(uri, ReadErrorReason.EMPTY, "gzip holds zero bytes")
    return data, uri, check_fits_structure(data, uri, limits)
