"""Fast assembly of FITS files whose structure astropy wrote once.

Building headers and table columns through astropy costs 10-30 ms per file (its
per-card verification and column machinery), which would make a million-spectrum
release take days. Here astropy still does all the FITS work, once per shape: it
renders every card (``fits.Card``) and builds each binary-table HDU header and
record dtype for a given column layout and row length (cached); a file is then
those header bytes plus the data as big-endian bytes, padded to 2880-byte blocks.
Every writer's output is read back by astropy in the tests.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from astropy.io import fits

BLOCK = 2880
_TFORM = re.compile(r"(\d*)([AEJKD])")
Card = tuple[str, Any, str]


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % BLOCK)


def render_cards(cards: Iterable[Card]) -> str:
    """80-character card images, formatted by astropy."""
    return "".join(fits.Card(key, value, comment).image for key, value, comment in cards)


@functools.cache
def render_static(cards: tuple[Card, ...]) -> str:
    """Card images of a fixed block (e.g. the observing keywords), rendered once."""
    return render_cards(cards)


def _header_bytes(structural: Sequence[Card], body: str) -> bytes:
    text = render_cards(structural) + body + "END".ljust(80)
    return _pad(text.encode("ascii"), b" ")


def primary_image(body: str, image: np.ndarray) -> bytes:
    """A primary HDU holding a float32 image, with the cards in ``body``."""
    image = np.ascontiguousarray(image, dtype=">f4")
    structural: list[Card] = [("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", -32, "")]
    structural.append(("NAXIS", image.ndim, ""))
    structural += [(f"NAXIS{i + 1}", n, "") for i, n in enumerate(reversed(image.shape))]
    structural.append(("EXTEND", True, ""))
    return _header_bytes(structural, body) + _pad(image.tobytes(), b"\0")


def primary_header_only(body: str) -> bytes:
    """A data-less primary HDU (labels only), followed by extensions."""
    structural: list[Card] = [
        ("SIMPLE", True, "conforms to FITS standard"),
        ("BITPIX", 8, ""),
        ("NAXIS", 0, ""),
        ("EXTEND", True, ""),
    ]
    return _header_bytes(structural, body)


@functools.cache
def _table_template(
    name: str | None, columns: tuple[tuple[str, str], ...], n_rows: int
) -> tuple[bytes, np.dtype]:
    """Header bytes and record dtype astropy produces for this table shape."""
    defs = []
    for col_name, fmt in columns:
        match = _TFORM.fullmatch(fmt)
        if match is None:
            raise ValueError(f"unsupported TFORM {fmt!r}")
        repeat, code = int(match.group(1) or 1), match.group(2)
        if code == "A":
            array = np.array([""] * n_rows)
        elif repeat > 1:
            array = np.zeros((n_rows, repeat))
        else:
            array = np.zeros(n_rows)
        defs.append(fits.Column(name=col_name, format=fmt, array=array))
    hdu = fits.BinTableHDU.from_columns(defs, name=name)
    return _pad(hdu.header.tostring().encode("ascii"), b" "), hdu.data.dtype.newbyteorder(">")


def bintable(name: str | None, columns: Sequence[tuple[str, str, Any]], n_rows: int) -> bytes:
    """A binary-table extension from (name, TFORM, values) columns of ``n_rows`` rows
    (``name=None``: no EXTNAME card)."""
    layout = tuple((col_name, fmt) for col_name, fmt, _ in columns)
    header, dtype = _table_template(name, layout, n_rows)
    records = np.zeros(n_rows, dtype=dtype)
    for col_name, _, values in columns:
        field = records[col_name]
        if field.dtype.kind == "S":
            records[col_name] = np.char.encode(np.asarray(values, dtype=str), "ascii")
        else:
            records[col_name] = np.asarray(values).reshape(field.shape)
    return header + _pad(records.tobytes(), b"\0")


def image_extension(body: str, image: np.ndarray) -> bytes:
    """An IMAGE extension holding a float32 array (1D or 2D), with the cards in ``body``.

    ``body`` should start with the EXTNAME card; the structural cards come first, in the
    order the FITS standard requires (XTENSION, BITPIX, NAXISn, PCOUNT, GCOUNT).
    """
    image = np.ascontiguousarray(image, dtype=">f4")
    structural: list[Card] = [("XTENSION", "IMAGE", "image extension"), ("BITPIX", -32, "")]
    structural.append(("NAXIS", image.ndim, ""))
    structural += [(f"NAXIS{i + 1}", n, "") for i, n in enumerate(reversed(image.shape))]
    structural += [("PCOUNT", 0, ""), ("GCOUNT", 1, "")]
    return _header_bytes(structural, body) + _pad(image.tobytes(), b"\0")
