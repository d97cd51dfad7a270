"""The fast read path's view of a FITS file: headers and data straight from the bytes.

The structural walk (``source.check_fits_structure``) already holds every byte of the
file in memory and knows where each HDU's header and data lie. For the few arrays
and keywords a ``Spectrum`` needs, that is enough: a binary-table column is a
strided big-endian view of the bytes, at the offset the TFORMn widths give, and an
image is a reshaped view. No HDU beyond those read is parsed, and no table builds
column definitions for its hundreds of unused columns, which is where astropy
spends nearly all of an SDSS file's read time (docs/benchmarks.md, "Decode").

Only the plain encodings are decoded here: scalar or vector columns of type
B, I, J, K, E, D and A without TSCALn/TZEROn/TDIMn, and float or integer images
without BSCALE/BZERO/BLANK. Anything else raises ``Unsupported``, and the reader
(``reader.py``) then reads the file with astropy, so an unusual encoding is slow,
never wrong.

Why not cfitsio (``fitsio``) for this: fitsio 1.4.2 opens files by name only (no
memory files), so bytes from S3 or a gunzip would go through a temporary file, and
its per-HDU column info costs ~25 us a column (3-10 ms on SDSS's SPECOBJ/SPALL
tables); views on bytes the guards have already read cost less than cfitsio's own
open. ``benchmarks/bench_io.py`` measures all three side by side.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from raysurvey.io.header import FastHeader
from raysurvey.io.source import FitsStructure, HduSpan


class Unsupported(Exception):
    """The fast path does not decode this encoding; read the file with astropy."""


def _no_fallback() -> Any:
    raise Unsupported("header value needs astropy's parser")


#: Binary-table type code -> (numpy dtype, bytes per element); None: not decoded.
_CODES: dict[str, tuple[str | None, int]] = {
    "B": ("u1", 1),
    "I": (">i2", 2),
    "J": (">i4", 4),
    "K": (">i8", 8),
    "E": (">f4", 4),
    "D": (">f8", 8),
    "A": ("S", 1),
    "L": (None, 1),
    "C": (None, 8),
    "M": (None, 16),
    "P": (None, 8),
    "Q": (None, 16),
}
_TFORM = re.compile(r"^\s*(\d*)([LXBIJKAEDCMPQ])(.*?)\s*$")
_TABLE_KEY = re.compile(rb"(TTYPE|TFORM|TSCAL|TZERO|TDIM)([0-9]{1,3}) {0,2}= (?: *'([^']*)')?")
#: Signed storage -> (dtype astropy returns, TZEROn that marks it unsigned).
_UNSIGNED = {
    "u1": ("i1", -128),
    ">i2": (">u2", 1 << 15),
    ">i4": (">u4", 1 << 31),
    ">i8": (">u8", 1 << 63),
}
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")
_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_form_cache: dict[str, tuple[str | None, int, int]] = {}


def parse_tform(form: str) -> tuple[str | None, int, int]:
    """``(numpy dtype or None, repeat, width in bytes)`` of a TFORMn value."""
    try:
        return _form_cache[form]
    except KeyError:
        pass
    match = _TFORM.match(form)
    if not match:
        raise Unsupported(f"TFORM {form!r}")
    repeat = int(match.group(1) or 1)
    code, rest = match.group(2), match.group(3)
    if code == "X":
        out: tuple[str | None, int, int] = (None, repeat, -(-repeat // 8))
    elif code in "PQ":
        out = (None, repeat, repeat * _CODES[code][1])
    else:
        dtype, size = _CODES[code]
        if rest or repeat == 0:  # "rAw" substrings, "0E" empty columns
            dtype = None
        if dtype == "S":
            dtype = f"S{repeat}"
            out = (dtype, 1, repeat)
        else:
            out = (dtype, repeat, repeat * size)
    _form_cache[form] = out
    return out


class RawTable:
    """One binary-table HDU's column layout, from its TTYPEn/TFORMn cards."""

    def __init__(self, data: bytes, header_bytes: bytes, header: FastHeader, span: HduSpan):
        if header.get("GCOUNT", 1) != 1:
            raise Unsupported("GCOUNT != 1")
        self.row_bytes = int(header["NAXIS1"])
        self.nrows = int(header["NAXIS2"])
        n_fields = int(header.get("TFIELDS", 0))
        names: dict[int, str] = {}
        forms: dict[int, str] = {}
        self._encoded: dict[int, dict[bytes, Any]] = {}  # TSCALn, TZEROn, TDIMn by column
        for match in _TABLE_KEY.finditer(header_bytes):
            start = match.start()
            if start % 80 or header_bytes[start + 8 : start + 10] != b"= ":
                continue
            kind, index = match.group(1), int(match.group(2))
            if kind == b"TTYPE" or kind == b"TFORM":
                quoted = match.group(3)
                end = match.end()
                tail = header_bytes[end : start + 80].lstrip(b" ")  # comment or nothing
                if quoted is not None and end <= start + 80 and tail[:1] in (b"", b"/"):
                    value = quoted.decode("ascii", "replace").rstrip()
                elif quoted is not None and tail[:1] != b"'":
                    raise Unsupported(f"{kind.decode()}{index}: text after the value")
                else:  # no string, or a doubled quote inside it: the full parser
                    value = parse_value(header_bytes[start + 10 : start + 80])
                if not isinstance(value, str):
                    raise Unsupported(f"{kind.decode()}{index} is not a string")
                (names if kind == b"TTYPE" else forms).setdefault(index, value)
            else:
                self._encoded.setdefault(index, {}).setdefault(
                    kind, header_bytes[start + 10 : start + 80]
                )
        expected = list(range(1, n_fields + 1))
        if sorted(forms) != expected or sorted(names) != expected:
            raise Unsupported("TTYPEn/TFORMn do not number 1..TFIELDS")
        self.names = [names.get(i, "").strip() for i in range(1, n_fields + 1)]
        # lower-case name -> index; the last of names equal but for case wins, as in
        # ``fitsutil.table_column``
        self._by_name = {name.lower(): i for i, name in enumerate(self.names)}
        self._layout: list[tuple[str | None, int, int]] = []  # (dtype, repeat, offset)
        offset = 0
        for i in range(1, n_fields + 1):
            dtype, repeat, width = parse_tform(forms[i])
            self._layout.append((dtype, repeat, offset))
            offset += width
        if offset != self.row_bytes:
            raise Unsupported(f"TFORM widths sum to {offset}, NAXIS1 is {self.row_bytes}")
        self._data = data
        self._start = span.data_start

    def index(self, name: str) -> int | None:
        """0-based index of a column by case-insensitive name (the last one of a name
        that repeats in another case, as ``fitsutil.table_column`` resolves it)."""
        return self._by_name.get(name.lower())

    def _unsigned(self, i: int, dtype: str) -> str | None:
        """The unsigned dtype of a column stored with FITS's unsigned-integer offset
        (TZEROn = 2**(bits-1), TSCALn 1; int8 for B with TZERO -128), else None."""
        cards = {key: parse_value(raw) for key, raw in self._encoded[i + 1].items()}
        if b"TDIM" in cards or cards.get(b"TSCAL", 1) != 1 or dtype not in _UNSIGNED:
            return None
        target, offset = _UNSIGNED[dtype]
        return target if cards.get(b"TZERO", 0) == offset else None

    def read(self, indexes: Iterable[int], rows: int | None = None) -> dict[int, np.ndarray]:
        """Columns by index, the first ``rows`` rows (all by default), as astropy
        gives them: views of the bytes, unsigned integers converted."""
        indexes = list(indexes)
        fields, formats, offsets, convert = [], [], [], {}
        for i in indexes:
            dtype, repeat, offset = self._layout[i]
            if dtype is not None and (i + 1) in self._encoded:
                convert[i] = self._unsigned(i, dtype)
                if convert[i] is None:
                    dtype = None
            if dtype is None:
                raise Unsupported(f"column {self.names[i]!r} needs astropy's decoding")
            fields.append(f"c{i}")
            formats.append(dtype if repeat == 1 else (dtype, (repeat,)))
            offsets.append(offset)
        count = self.nrows if rows is None else min(rows, self.nrows)
        layout = np.dtype(
            {"names": fields, "formats": formats, "offsets": offsets, "itemsize": self.row_bytes}
        )
        table = np.frombuffer(self._data, layout, count=count, offset=self._start)
        out = {}
        for i in indexes:
            column = table[f"c{i}"]
            if i in convert:  # flip the sign bit: the stored value minus TZERO, unsigned
                bits = column.view(column.dtype.str.replace("i", "u"))
                column = bits ^ np.array(1 << (8 * bits.itemsize - 1), bits.dtype)  # native order
                if convert[i] == "i1":
                    column = column.view("i1")
            out[i] = column
        return out


class RawHDU:
    """One HDU: its header values (``FastHeader``), name, columns, image or table."""

    def __init__(self, data: bytes, span: HduSpan, index: int):
        self.index = index
        self._data = data
        self._span = span
        self._header_bytes = data[span.header_start : span.header_stop]
        if _NOT_PRINTABLE.search(self._header_bytes):  # astropy refuses such headers
            raise Unsupported(f"HDU {index} header has bytes outside printable ASCII")
        self.header = FastHeader(self._header_bytes, _no_fallback)
        self._table: RawTable | None = None

    @property
    def name(self) -> str:
        """EXTNAME as astropy's ``hdu.name`` gives it ('PRIMARY'/'' when absent)."""
        return str(self.header.get("EXTNAME", "PRIMARY" if self.index == 0 else ""))

    @property
    def is_bintable(self) -> bool:
        return self.index > 0 and self.header.get("XTENSION") in ("BINTABLE", "A3DTABLE")

    def column_names(self) -> set[str]:
        """Upper-case column names from TTYPEn (``fitsutil.header_column_names``)."""
        if not self.is_bintable:
            return set()
        header = self.header
        count = int(header.get("TFIELDS", 0))
        return {str(header.get(f"TTYPE{i}", "")).strip().upper() for i in range(1, count + 1)}

    def table(self) -> RawTable:
        if not self.is_bintable:
            raise Unsupported(f"HDU {self.index} is not a binary table")
        if self._table is None:
            self._table = RawTable(self._data, self._header_bytes, self.header, self._span)
        return self._table

    def image(self) -> np.ndarray | None:
        """The data array of an image HDU (None without data), unscaled values only."""
        header = self.header
        if self.index > 0 and header.get("XTENSION") != "IMAGE":
            raise Unsupported(f"HDU {self.index} is not an image")
        if header.get("GROUPS") is True:
            raise Unsupported("random groups")
        if header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0:
            raise Unsupported("scaled image")
        bitpix = header["BITPIX"]
        naxis = header["NAXIS"]
        if bitpix not in _BITPIX or ("BLANK" in header and bitpix > 0):
            raise Unsupported(f"BITPIX {bitpix}")
        if naxis == 0:
            return None
        shape = tuple(int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
        if 0 in shape:
            raise Unsupported("an empty axis")
        count = int(np.prod(shape))
        return np.frombuffer(
            self._data, _BITPIX[bitpix], count=count, offset=self._span.data_start
        ).reshape(shape)


class RawFits:
    """Every HDU of a checked file, each made into a ``RawHDU`` when first asked for."""

    def __init__(self, data: bytes, structure: FitsStructure):
        self.data = data
        self._spans = structure.hdus
        self._hdus: dict[int, RawHDU] = {}

    def __len__(self) -> int:
        return len(self._spans)

    def hdu(self, index: int) -> RawHDU:
        if index not in self._hdus:
            if not 0 <= index < len(self._spans):
                raise IndexError(f"no HDU {index}")
            self._hdus[index] = RawHDU(self.data, self._spans[index], index)
        return self._hdus[index]


def parse_value(raw: bytes) -> Any:
    """A card's value (``header.parse_card_value``), ``Unsupported`` where it needs astropy."""
    from raysurvey.io.header import _UNPARSED, parse_card_value

    value = parse_card_value(raw)
    if value is _UNPARSED:
        raise Unsupported("card value needs astropy's parser")
    return value


class LazyHDUList:
    """astropy's HDU list over the same bytes, opened only if something asks for it.

    The fast path never touches it; it is there for header values the fast parser
    leaves to astropy and for the fallback. ``opened`` tells tests whether it was used.
    """

    def __init__(self, data: bytes):
        self._data = data
        self._hdul = None

    @property
    def opened(self) -> bool:
        return self._hdul is not None

    def _get(self):
        if self._hdul is None:
            from astropy.io import fits
            from astropy.utils.exceptions import AstropyWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyWarning)
                self._hdul = fits.open(io.BytesIO(self._data), memmap=False, lazy_load_hdus=True)
        return self._hdul

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self) -> Iterator:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def close(self) -> None:
        if self._hdul is not None:
            self._hdul.close()
