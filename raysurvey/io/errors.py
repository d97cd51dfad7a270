"""The one exception the readers raise, with a reason code from one enum.

Downstream stages turn a ``SpectrumReadError`` into a catalog row with
``status="error"`` and ``error="<reason>: <message>"``, so the reason codes are part
of the catalog vocabulary (docs/formats.md lists them).
"""

from __future__ import annotations

from enum import StrEnum


class ReadErrorReason(StrEnum):
    """Why a spectrum file could not be read."""

    NOT_FOUND = "not_found"
    IO_ERROR = "io_error"
    EMPTY = "empty"
    NOT_FITS = "not_fits"
    TRUNCATED = "truncated"
    BAD_GZIP = "bad_gzip"
    TOO_LARGE = "too_large"
    BAD_HEADER = "bad_header"
    UNKNOWN_LAYOUT = "unknown_layout"
    MISSING_HDU = "missing_hdu"
    MISSING_COLUMN = "missing_column"
    MISSING_KEYWORD = "missing_keyword"
    SHAPE_MISMATCH = "shape_mismatch"
    BAD_WAVELENGTH = "bad_wavelength"
    NON_MONOTONIC_WAVELENGTH = "non_monotonic_wavelength"
    NO_VALID_FLUX = "no_valid_flux"


class SpectrumReadError(Exception):
    """A spectrum source that cannot be read, naming the file and the reason.

    Parameters
    ----------
    uri : str
        The source that failed (a URI, a path, or ``"<bytes>"``).
    reason : ReadErrorReason or str
        Machine-readable reason code.
    message : str
        Human-readable detail.
    """

    def __init__(self, uri: str, reason: ReadErrorReason | str, message: str = ""):
        self.uri = str(uri)
        self.reason = ReadErrorReason(reason)
        self.message = message
        super().__init__(f"{self.uri}: {self.reason.value}: {message}")

    def __reduce__(self):  # keep pickling (Ray moves errors between processes) exact
        return (type(self), (self.uri, self.reason.value, self.message))

    @property
    def code(self) -> str:
        """The reason code as a plain string, as written to catalogs."""
        return self.reason.value
