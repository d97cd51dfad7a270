"""Vectorised anti-aliased rasteriser for line plots of whole batches of spectra.

Why not matplotlib: a figure per spectrum plus a PNG round trip costs tens of
milliseconds, which at survey scale is hours of CPU. This draws the same picture
with a few numpy passes over the batch.

Model: the stroke of a polyline of width ``w`` pixels is sampled on ``supersample``
sub-columns per pixel column. At a sub-column centre ``cx`` the stroke covers the
vertical span of the polyline over ``[cx - w/2, cx + w/2]``, widened by ``w/2`` above
and below. A pixel's coverage is the mean over its sub-columns of the length of
that span inside the pixel row: exact for horizontal strokes, close for steep or
noisy ones (the union of overlapping segments is counted once, as Agg does for a
single path). Non-finite points are skipped.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Default axes margin of matplotlib (``axes.xmargin`` / ``axes.ymargin``).
MARGIN = 0.05


def autoscale(values: np.ndarray, margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Per-row data limits as matplotlib's autoscale gives them: range plus margins.

    A constant (or all-NaN) row gets limits around its value, so it is drawn in the
    middle of the image, as matplotlib's nonsingular expansion does.
    """
    lo = np.nanmin(np.where(np.isfinite(values), values, np.nan), axis=-1)
    hi = np.nanmax(np.where(np.isfinite(values), values, np.nan), axis=-1)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 0.0)
    span = hi - lo
    flat = span <= 1e-12 * np.maximum(np.abs(hi), 1e-30)
    expand = np.where(np.abs(lo) > 0, 0.05 * np.abs(lo), 0.05)
    lo = np.where(flat, lo - expand, lo - margin * span)
    hi = np.where(flat, hi + expand, hi + margin * span)
    return lo, hi


@lru_cache(maxsize=32)
def _sampling_plan(
    x_key: bytes, n: int, width: int, half_width: float, supersample: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index structure shared by every row drawn against the same x pixels.

    Returns, for every sub-column window ``[cx - hw, cx + hw]``: the interpolation
    index and weight of both window ends, the gather list of points inside each
    window (framed by its two ends), the segment starts for ``reduceat``, and which
    windows overlap the data at all.
    """
    x = np.frombuffer(x_key, dtype=np.float64, count=n)
    centres = (np.arange(width * supersample) + 0.5) / supersample
    ends = np.stack([centres - half_width, centres + half_width], axis=1)  # (S, 2)
    k = np.clip(np.searchsorted(x, ends, side="right") - 1, 0, n - 2)
    t = (ends - x[k]) / (x[k + 1] - x[k])
    inside_data = (ends[:, 1] >= x[0]) & (ends[:, 0] <= x[-1])
    t = np.clip(t, 0.0, 1.0)
    start = np.searchsorted(x, ends[:, 0], side="left")
    stop = np.searchsorted(x, ends[:, 1], side="right")
    counts = stop - start + 2
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    total = int(counts.sum())
    gather = np.empty(total, dtype=np.int64)
    n_win = centres.size
    # Window ends live after the n points in the value matrix: n + 2*j and n + 2*j + 1.
    gather[offsets] = n + 2 * np.arange(n_win)
    gather[offsets + counts - 1] = n + 2 * np.arange(n_win) + 1
    inner = np.ones(total, dtype=bool)
    inner[offsets] = False
    inner[offsets + counts - 1] = False
    run_start = np.repeat(start - (offsets + 1), counts)
    gather[inner] = (np.arange(total) + run_start)[inner]
    return k, t, gather, offsets, inside_data, counts


def polyline_coverage(
    x_px: np.ndarray,
    y_px: np.ndarray,
    width: int,
    height: int,
    line_width: float,
    supersample: int = 4,
) -> np.ndarray:
    """Coverage in [0, 1] of a stroked polyline per pixel, for a batch of rows.

    Parameters
    ----------
    x_px : numpy.ndarray
        float [N], increasing pixel x of every point (shared by the batch).
    y_px : numpy.ndarray
        float [B, N], pixel y of every point, 0 at the top edge; NaN is skipped.
    width, height : int
        Image size in pixels.
    line_width : float
        Stroke width in pixels (points * dpi / 72).

    Returns
    -------
    numpy.ndarray
        float32 [B, height, width].
    """
    x = np.ascontiguousarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    batch, n = y.shape
    hw = 0.5 * line_width
    k, t, gather, starts, inside, _ = _sampling_plan(x.tobytes(), n, width, hw, supersample)
    # Polyline y at both ends of every window, interpolated between neighbours.
    y0, y1 = y[:, k], y[:, k + 1]  # (B, S, 2)
    ends = y0 + t * (y1 - y0)
    values = np.concatenate([y, ends.reshape(batch, -1)], axis=1)[:, gather]
    lo = np.fmin.reduceat(values, starts, axis=1) - hw  # (B, S)
    hi = np.fmax.reduceat(values, starts, axis=1) + hw
    valid = inside[None, :] & np.isfinite(lo) & np.isfinite(hi)
    lo = np.clip(np.where(valid, lo, 0.0), 0.0, height)
    hi = np.clip(np.where(valid, hi, 0.0), 0.0, height)
    # Coverage of row r by [lo, hi] is F(hi)[r] - F(lo)[r], F(v)[r] = clip(v - r, 0, 1);
    # summed over the sub-columns of a pixel column with a difference array.
    n_cols = width
    column = np.repeat(np.arange(n_cols), supersample)
    base = (np.arange(batch)[:, None] * n_cols + column[None, :]) * (height + 2)
    index, weight = [], []
    for v, sign in ((hi, 1.0), (lo, -1.0)):
        floor = np.floor(v).astype(np.int64)
        frac = v - floor
        w = np.where(valid, sign, 0.0)
        index += [base, base + floor, base + floor + 1]
        weight += [w, w * (frac - 1.0), -w * frac]
    diff = np.bincount(
        np.concatenate([i.ravel() for i in index]),
        np.concatenate([w.ravel() for w in weight]),
        minlength=batch * n_cols * (height + 2),
    )
    coverage = np.cumsum(diff.reshape(batch, n_cols, height + 2).astype(np.float32), axis=2)
    coverage = coverage[:, :, :height].transpose(0, 2, 1)
    coverage *= 1.0 / supersample
    return np.clip(coverage, 0.0, 1.0, out=coverage)


def data_to_pixels(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, size: int, flip: bool
) -> np.ndarray:
    """Map data values to pixel coordinates given per-row (or scalar) limits."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if lo.ndim:
        lo, hi = lo[:, None], hi[:, None]
    frac = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    return (1.0 - frac) * size if flip else frac * size


def paint(coverage: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """One opaque stroke on white as uint8 RGB, through a 256-level lookup table."""
    level = np.arange(256, dtype=np.float64)[:, None] / 255.0
    lut = np.zeros((256, 4), dtype=np.uint8)  # RGB + pad: one uint32 per colour
    lut[:, :3] = np.rint(255.0 - level * (255.0 - np.asarray(rgb, dtype=np.float64)))
    index = (coverage * 255.0 + 0.5).astype(np.uint8)
    packed = np.take(lut.view(np.uint32).ravel(), index)
    return np.ascontiguousarray(packed.view(np.uint8).reshape(*index.shape, 4)[..., :3])


#: Coverage levels per stroke in the blending table (error <= alpha * 255 / 62 levels).
BLEND_LEVELS = 32


@lru_cache(maxsize=8)
def _blend_table(colours: tuple[tuple[int, int, int], ...], alpha: float) -> np.ndarray:
    """uint32-packed RGB of every combination of quantised stroke coverages."""
    levels = np.arange(BLEND_LEVELS, dtype=np.float64) / (BLEND_LEVELS - 1)
    grids = np.meshgrid(*([levels] * len(colours)), indexing="ij")
    rgb = np.full(grids[0].shape + (3,), 255.0)
    for coverage, colour in zip(grids, colours, strict=True):
        a = alpha * coverage[..., None]
        rgb += a * (np.asarray(colour, dtype=np.float64) - rgb)
    table = np.zeros((rgb[..., 0].size, 4), dtype=np.uint8)
    table[:, :3] = np.clip(np.rint(rgb.reshape(-1, 3)), 0, 255)
    return table.view(np.uint32).ravel()


def blend_strokes(
    coverages: list[np.ndarray],
    colours: tuple[tuple[int, int, int], ...],
    alpha: float,
    shape: tuple[int, int, int],
) -> np.ndarray:
    """Composite strokes over white in order (Agg's 'over'), as uint8 RGB ``shape + (3,)``.

    Coverages are quantised to ``BLEND_LEVELS`` levels and looked up in a table of
    every combination, so blending costs one gather per pixel.
    """
    bits = int(np.log2(BLEND_LEVELS))
    index = np.zeros(int(np.prod(shape)), dtype=np.int32)
    for coverage in coverages:
        index <<= bits
        index |= (coverage * (BLEND_LEVELS - 1) + 0.5).astype(np.int32)
    packed = np.take(_blend_table(tuple(colours), float(alpha)), index)
    return np.ascontiguousarray(packed.view(np.uint8).reshape(*shape, 4)[..., :3])
