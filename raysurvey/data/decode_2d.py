"""Decode batches of 2D stripes and g, r, i cutouts, one row out per URI in.

The 2D counterpart of ``decode.py``, with the same contract: pure numpy (no Ray),
never raises for bad input, and a file that cannot be read keeps its row with
``status="error"``, ``error="<reason code>: <message>"`` and NaN arrays. A null or
empty URI (a spectrum without that product: a release made without
``--with-2d`` / ``--with-photometry``) is the error ``missing_product``.

Stripes come back as fixed windows: ``rows`` rows centred on each arm's trace
(``TRACEROW``, rounded, the window kept inside the stripe) and the first ``columns``
columns; a stripe smaller than the window is ``shape_mismatch``. MAC-Net's 11-row
input is ``rows=11``; its column windows are the modality's business.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from raysurvey.io import SpectrumReadError, read_cutout, read_stripes
from raysurvey.io.errors import ReadErrorReason
from raysurvey.io.source import fetch_bytes

STATUS_OK = "ok"
STATUS_ERROR = "error"
#: Reason code of a row whose product URI is null or empty.
MISSING_PRODUCT = "missing_product"
#: Reason code for failures that are not a ``SpectrumReadError`` (a bug, not bad input).
INTERNAL_ERROR = "internal_error"
STRIPE_ROWS, STRIPE_COLUMNS = 15, 4000
CUTOUT_SIZE = 64


def _missing(uri: Any) -> bool:
    return uri is None or (isinstance(uri, float) and math.isnan(uri)) or str(uri) == ""


def _fetch(uri: Any) -> bytes | SpectrumReadError | None:
    if _missing(uri):
        return None
    try:
        return fetch_bytes(str(uri))
    except SpectrumReadError as error:
        return error


def _each(
    uris: Sequence[Any],
    product: str,
    read_one: Callable[[int, str | bytes, str], None],
    fetch_threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Call ``read_one(row, source, uri)`` per row; return the status and error columns."""
    n = len(uris)
    status = np.full(n, STATUS_OK, dtype=object)
    error = np.full(n, "", dtype=object)
    remote = [
        u for u in uris if not _missing(u) and "://" in str(u) and not str(u).startswith("file://")
    ]
    if remote and fetch_threads > 1:
        with ThreadPoolExecutor(min(fetch_threads, n)) as pool:
            payloads = list(pool.map(_fetch, uris))
    else:
        payloads = [None] * n  # local files: the reader opens them itself
    for i, uri in enumerate(uris):
        try:
            if _missing(uri):
                status[i] = STATUS_ERROR
                error[i] = f"{MISSING_PRODUCT}: no {product} file for this row"
                continue
            payload = payloads[i]
            if isinstance(payload, SpectrumReadError):
                raise payload
            read_one(i, str(uri) if payload is None else payload, str(uri))
        except SpectrumReadError as exc:
            status[i] = STATUS_ERROR
            error[i] = f"{exc.code}: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - one bad row must not kill the job
            status[i] = STATUS_ERROR
            error[i] = f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"
    return status, error


def stripe_window(image: np.ndarray, trace_row: float, rows: int, columns: int) -> np.ndarray:
    """``rows`` x ``columns`` of a stripe: rows centred on the trace, the first columns.

    Raises ValueError when the stripe is smaller than the window.
    """
    n_rows, n_columns = image.shape
    if n_rows < rows or n_columns < columns:
        raise ValueError(f"stripe is {n_rows} x {n_columns}, smaller than {rows} x {columns}")
    start = int(np.clip(round(trace_row) - rows // 2, 0, n_rows - rows))
    return image[start : start + rows, :columns]


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of [..., H, W]; ValueError when smaller."""
    height, width = image.shape[-2:]
    if height < size or width < size:
        raise ValueError(f"cutout is {height} x {width}, smaller than {size} x {size}")
    top, left = (height - size) // 2, (width - size) // 2
    return image[..., top : top + size, left : left + size]


def decode_stripes(
    uris: Sequence[str | None],
    rows: int = STRIPE_ROWS,
    columns: int = STRIPE_COLUMNS,
    fetch_threads: int = 8,
) -> dict[str, np.ndarray]:
    """Read every stripes URI into fixed-size blue and red windows.

    Parameters
    ----------
    uris : sequence of str or None
        Stripes files (paths, ``file://``, ``s3://``); None or "" for a missing product.
    rows, columns : int
        Window per arm: ``rows`` rows centred on the trace, the first ``columns``.
    fetch_threads : int
        Concurrent fetches for object-store URIs (parsing stays single-threaded).

    Returns
    -------
    dict
        ``stripe_blue``, ``stripe_red`` float32 [B, rows, columns] (NaN in error rows),
        ``status`` object [B] ("ok" | "error"), ``error`` object [B] ("" or
        "<reason code>: <message>").
    """
    n = len(uris)
    blue = np.full((n, rows, columns), np.nan, dtype=np.float32)
    red = np.full((n, rows, columns), np.nan, dtype=np.float32)

    def read_one(i: int, source: str | bytes, uri: str) -> None:
        stripes = read_stripes(source, uri=uri)
        windows = []
        for arm in ("blue", "red"):
            try:
                image, trace = stripes.image(arm), stripes.trace_row[arm]
                windows.append(stripe_window(image, trace, rows, columns))
            except ValueError as exc:
                raise SpectrumReadError(
                    uri, ReadErrorReason.SHAPE_MISMATCH, f"{arm.upper()}: {exc}"
                ) from None
        blue[i], red[i] = windows

    status, error = _each(uris, "stripes", read_one, fetch_threads)
    return {"stripe_blue": blue, "stripe_red": red, "status": status, "error": error}


def decode_cutouts(
    uris: Sequence[str | None], size: int = CUTOUT_SIZE, fetch_threads: int = 8
) -> dict[str, np.ndarray]:
    """Read every cutout URI into g, r, i images of ``size`` x ``size`` (centre crop).

    Returns
    -------
    dict
        ``cutout_gri`` float32 [B, 3, size, size] in g, r, i order (NaN in error
        rows), ``status`` and ``error`` object [B] as for ``decode_stripes``.
    """
    n = len(uris)
    gri = np.full((n, 3, size, size), np.nan, dtype=np.float32)

    def read_one(i: int, source: str | bytes, uri: str) -> None:
        cutout = read_cutout(source, uri=uri)
        try:
            gri[i] = centre_crop(cutout.gri, size)
        except ValueError as exc:
            raise SpectrumReadError(uri, ReadErrorReason.SHAPE_MISMATCH, str(exc)) from None

    status, error = _each(uris, "cutout", read_one, fetch_threads)
    return {"cutout_gri": gri, "status": status, "error": error}
