"""Primary-header values parsed once from the raw cards, without astropy's per-card cost.

astropy parses a card's value on every access and consults its configuration each
time (~30 us a value here); a LAMOST label set is ~25 values, several times the cost
of opening the file. The structural walk in ``source`` already holds the primary
header's raw cards, so labels are parsed from them with the FITS fixed-format
rules: quoted strings with doubled quotes, logical T/F, integers, reals (E or D
exponent). Anything else (complex values, CONTINUE long strings) is taken from
astropy's own header. Tests check the two agree on every card of the example files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from raysurvey.io.source import header_cards

_STRING = re.compile(rb"^\s*'((?:[^']|'')*)'")
_UNPARSED = object()


def parse_card_value(raw: bytes) -> Any:
    """Value of a fixed-format card's value field, or ``_UNPARSED``."""
    text = raw.lstrip()
    if text[:1] == b"'":
        match = _STRING.match(text)
        if not match:
            return _UNPARSED
        value = match.group(1).replace(b"''", b"'").decode("ascii", "replace").rstrip()
        return _UNPARSED if value.endswith("&") else value  # CONTINUE: astropy joins it
    token = text.split(b"/", 1)[0].rstrip()
    if not token:
        return None  # an undefined value
    if token == b"T" or token == b"F":
        return token == b"T"
    try:
        if b"." in token or b"E" in token or b"D" in token or b"e" in token or b"d" in token:
            return float(token.replace(b"D", b"E").replace(b"d", b"e"))
        return int(token)
    except ValueError:
        return _UNPARSED


def _split_cards(header_bytes: bytes) -> dict[bytes, bytes]:
    """Padded 8-byte keyword -> raw value field, for every value card (first one wins)."""
    cards = [header_bytes[i : i + 80] for i in range(0, len(header_bytes), 80)]
    return {card[:8]: card[10:] for card in reversed(cards) if card[8:10] == b"= "}


class FastHeader(Mapping):
    """Read-only mapping over a primary header's raw bytes, values parsed on first use.

    The cards are split once (a list of byte slices, no per-card objects); values are
    parsed when asked for. ``fallback`` returns astropy's header for values this
    parser does not handle.
    """

    def __init__(self, header_bytes: bytes, fallback: Callable[[], Mapping[str, Any]]):
        self._bytes = header_bytes
        self._cards: dict[bytes, bytes] | None = None
        self._values: dict[str, Any] = {}
        self._fallback = fallback

    def _raw(self, key: str) -> bytes | None:
        if self._cards is None:
            self._cards = _split_cards(self._bytes)
        try:
            return self._cards.get(key.upper().encode("ascii").ljust(8))
        except UnicodeEncodeError:
            return None

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            pass
        raw = self._raw(key)
        if raw is None:
            raise KeyError(key)
        value = parse_card_value(raw)
        if value is _UNPARSED:
            value = self._fallback()[key.upper()]
        self._values[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._values or self._raw(key) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(header_cards(self._bytes))

    def __len__(self) -> int:
        return len(header_cards(self._bytes))
