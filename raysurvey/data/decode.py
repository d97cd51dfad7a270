"""Decode a batch of spectrum URIs onto the common grid, one row out per URI in.

Pure Python/numpy (no Ray): the pipeline runs it as a stateless CPU task, tests call
it directly. A file that cannot be read never disappears and never raises: its row
gets ``status="error"``, the reason code and message in ``error``, NaN flux.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from raysurvey.io import SpectrumReadError, read_spectrum
from raysurvey.io.source import fetch_bytes
from raysurvey.spectra import N_PIX, to_grid

STATUS_OK = "ok"
STATUS_ERROR = "error"
#: Reason code for failures that are not a ``SpectrumReadError`` (a bug, not bad input).
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class DecodeOptions:
    """How spectra are put on the grid, and how many files are fetched at once.

    ``fetch_threads`` overlaps object-store latency (s3://) within one task; parsing
    stays single-threaded (it holds the GIL). ``header_keys``: ``Spectrum.meta`` keys
    to return as ``header_<key>`` columns, for releases that come as a file listing
    (no manifest to carry ids, coordinates and labels). ``products``: the 2D files a
    row also needs (``stripes_uri``, ``cutout_uri``; see ``decode_2d``), for the
    stripes and photometry modalities. ``keep_ivar``: return the grid inverse variance
    too (``ivar``), for the redshift fit of ``classify_release --templates``.
    """

    n_pix: int = N_PIX
    fetch_threads: int = 8
    header_keys: tuple[str, ...] = ()
    products: tuple[str, ...] = ()  # "stripes", "cutout": 2D files to decode beside the 1D
    keep_ivar: bool = False  # also return the grid ``ivar`` (the redshift fit needs it)


def _fetch(uri: str) -> bytes | SpectrumReadError:
    try:
        return fetch_bytes(uri)
    except SpectrumReadError as error:
        return error


def decode_uris(uris: list[str], options: DecodeOptions | None = None) -> dict[str, np.ndarray]:
    """Read and grid every URI.

    Returns
    -------
    dict
        ``flux`` float32 [B, n_pix] (NaN where the grid has no information),
        ``ivar`` float32 [B, n_pix] when ``options.keep_ivar`` (0 where no information),
        ``good_fraction`` and ``snr`` float32 [B], ``status`` and ``error`` [B]:
        "ok" and "" or "error" and "<reason code>: <message>" (the row keeps its uri);
        ``header_<key>`` object [B] for each of ``options.header_keys`` (None where
        the file does not carry it or cannot be read).
    """
    options = options or DecodeOptions()
    n = len(uris)
    flux = np.full((n, options.n_pix), np.nan, dtype=np.float32)
    good_fraction = np.zeros(n, dtype=np.float32)
    snr = np.zeros(n, dtype=np.float32)
    ivar = np.zeros((n, options.n_pix), dtype=np.float32) if options.keep_ivar else None
    status = np.full(n, STATUS_OK, dtype=object)
    error = np.full(n, "", dtype=object)
    header = {key: [None] * n for key in options.header_keys}
    remote = [u for u in uris if "://" in u and not u.startswith("file://")]
    if remote and options.fetch_threads > 1:
        with ThreadPoolExecutor(min(options.fetch_threads, n)) as pool:
            payloads = list(pool.map(_fetch, uris))
    else:
        payloads = [None] * n  # local files: read_spectrum opens them itself
    for i, uri in enumerate(uris):
        try:
            payload = payloads[i]
            if isinstance(payload, SpectrumReadError):
                raise payload
            spectrum = read_spectrum(uri if payload is None else payload, uri=uri)
            grid = to_grid(spectrum, n_pix=options.n_pix)
        except SpectrumReadError as exc:
            status[i] = STATUS_ERROR
            error[i] = f"{exc.code}: {exc.message}"
            continue
        except Exception as exc:  # noqa: BLE001 - one bad row must not kill the job
            status[i] = STATUS_ERROR
            error[i] = f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"
            continue
        flux[i] = grid.flux
        if ivar is not None:
            ivar[i] = grid.ivar
        good_fraction[i] = grid.good_fraction
        snr[i] = grid.snr
        for key in options.header_keys:
            header[key][i] = spectrum.meta.get(key)
    out = {
        "flux": flux,
        "good_fraction": good_fraction,
        "snr": snr,
        "status": status,
        "error": error,
    }
    if ivar is not None:
        out["ivar"] = ivar
    for key, values in header.items():
        out[f"header_{key}"] = np.array(values, dtype=object)
    return out
