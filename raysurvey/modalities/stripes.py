"""``stripes``: the 2D-spectrum input of MAC-Net and DRC-Net.

Both papers cut the centre 11 rows of each arm's ~15-row fibre stripe (the rows that
hold the fibre's light; the outer rows are mostly background and the neighbours'
wings) and a window of columns, then z-score each cut on its own (MAC-Net eq. 1:
mean and standard deviation of the 11 x 2000 cut). The column windows are the
papers' (pixel indices into the ~4000-column arm):

| variant | blue | red | cut |
|---|---|---|---|
| ``macnet`` | 1000-3000 (~4100-5300 A) | 1500-3500 (~6590-8120 A) | 11 x 2000 |
| ``drcnet`` | 500-3500 | 500-3500 | 11 x 3000 |

``blue=(start, stop)`` / ``red=(start, stop)`` override a variant's windows; both arms
must then be equally wide, because the output stacks them on one arm axis:
float32 [B, 2, rows, width], index 0 blue, 1 red (the layout the models take).

The centre row is found per stripe (``centre="trace"``, default): the row whose
median over the window's columns is brightest, so a trace that sits a pixel or two
off the stripe's middle is still cut symmetrically; ``centre="middle"`` uses the
geometric middle row as a fixed crop. NaN-safe: statistics use finite pixels only and
non-finite pixels become 0 (the mean) after z-scoring; an arm with no finite pixel
becomes zeros.
"""

from __future__ import annotations

import warnings

import numpy as np

from raysurvey.modalities.registry import register

#: Batch keys of the decoded raw stripes (CONVENTIONS.md), float [B, rows, columns].
STRIPE_BLUE = "stripe_blue"
STRIPE_RED = "stripe_red"
#: Column windows per variant: (blue start, stop), (red start, stop).
WINDOWS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "macnet": ((1000, 3000), (1500, 3500)),
    "drcnet": ((500, 3500), (500, 3500)),
}
STRIPE_ROWS = 11


def options_for_width(width: int) -> dict:
    """The stripes options whose cut is ``width`` columns wide (what a model built for
    that width needs): the paper variant of that width, else the MAC-Net windows
    trimmed or widened around their centres."""
    for variant, (blue, _) in WINDOWS.items():
        if blue[1] - blue[0] == width:
            return {"variant": variant}
    (b0, b1), (r0, r1) = WINDOWS["macnet"]
    blue_start = max(0, (b0 + b1) // 2 - width // 2)
    red_start = max(0, (r0 + r1) // 2 - width // 2)
    return {"blue": [blue_start, blue_start + width], "red": [red_start, red_start + width]}


def _as_stripes(batch: dict, key: str) -> np.ndarray:
    if key not in batch:
        raise KeyError(f"stripes needs {key!r} in the batch (columns: {sorted(batch)})")
    x = batch[key]
    if isinstance(x, np.ndarray) and x.dtype == object:  # a Ray batch of per-row arrays
        x = np.stack([np.asarray(row, dtype=np.float32) for row in x])
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"{key} must be [B, rows, columns], got shape {x.shape}")
    return x


def centre_rows(stripes: np.ndarray, rows: int, centre: str, columns: slice) -> np.ndarray:
    """First row of the ``rows``-row cut of each stripe, int [B]."""
    n_rows = stripes.shape[1]
    if rows > n_rows:
        raise ValueError(f"cannot cut {rows} rows out of stripes with {n_rows}")
    if centre == "middle":
        middle = np.full(stripes.shape[0], (n_rows - 1) / 2)
    elif centre == "trace":
        window = stripes[:, :, columns]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN stripes
            profile = np.nanmedian(np.where(np.isfinite(window), window, np.nan), axis=2)
        profile = np.where(np.isfinite(profile), profile, -np.inf)  # (B, rows)
        middle = np.argmax(profile, axis=1).astype(np.float64)
        empty = ~np.isfinite(profile).any(axis=1)
        middle[empty] = (n_rows - 1) / 2
    else:
        raise ValueError(f"centre must be 'trace' or 'middle', not {centre!r}")
    first = np.floor(middle - (rows - 1) / 2 + 0.5).astype(int)
    return np.clip(first, 0, n_rows - rows)


def zscore_cuts(cuts: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over each [rows, width] cut; non-finite pixels -> 0."""
    x = cuts.astype(np.float64)
    finite = np.isfinite(x)
    n = finite.sum(axis=(-2, -1), keepdims=True)
    filled = np.where(finite, x, 0.0)
    mean = np.divide(
        filled.sum(axis=(-2, -1), keepdims=True), n, where=n > 0, out=np.zeros(n.shape)
    )
    var = np.where(finite, (x - mean) ** 2, 0.0).sum(axis=(-2, -1), keepdims=True)
    std = np.sqrt(np.divide(var, n, where=n > 0, out=np.zeros(n.shape)))
    z = np.divide(filled - mean, std, where=std > 0, out=np.zeros_like(x))
    return np.where(finite, z, 0.0).astype(np.float32)


def cut_arm(
    stripes: np.ndarray, window: tuple[int, int], rows: int, centre: str, name: str
) -> np.ndarray:
    """The z-scored ``rows`` x window cut of each stripe, float32 [B, rows, width]."""
    start, stop = window
    if not 0 <= start < stop <= stripes.shape[2]:
        raise ValueError(
            f"{name} window {start}-{stop} does not fit stripes of {stripes.shape[2]} columns"
        )
    columns = slice(start, stop)
    first = centre_rows(stripes, rows, centre, columns)
    index = first[:, None] + np.arange(rows)[None, :]  # (B, rows)
    cuts = np.take_along_axis(stripes[:, :, columns], index[:, :, None], axis=1)
    return zscore_cuts(cuts)


@register(
    "stripes",
    variants=tuple(WINDOWS),
    default_variant="macnet",
    description="centre 11 rows x column window of each arm, z-scored, float32 [B, 2, 11, W]",
)
def stripes(
    batch: dict[str, np.ndarray],
    variant: str = "macnet",
    blue: tuple[int, int] | None = None,
    red: tuple[int, int] | None = None,
    rows: int = STRIPE_ROWS,
    centre: str = "trace",
) -> np.ndarray:
    """Blue and red cuts stacked on an arm axis, float32 [B, 2, rows, width]."""
    if variant not in WINDOWS:
        raise ValueError(f"stripes variant must be one of {tuple(WINDOWS)}, not {variant!r}")
    blue = tuple(blue) if blue is not None else WINDOWS[variant][0]
    red = tuple(red) if red is not None else WINDOWS[variant][1]
    if blue[1] - blue[0] != red[1] - red[0]:
        raise ValueError(
            f"blue window {blue[0]}-{blue[1]} and red window {red[0]}-{red[1]} must be "
            "equally wide (the arms are stacked on one axis)"
        )
    arms = [
        cut_arm(_as_stripes(batch, key), window, rows, centre, key)
        for key, window in ((STRIPE_BLUE, blue), (STRIPE_RED, red))
    ]
    if arms[0].shape[0] != arms[1].shape[0]:
        raise ValueError(f"{STRIPE_BLUE} and {STRIPE_RED} hold different numbers of rows")
    return np.stack(arms, axis=1)
