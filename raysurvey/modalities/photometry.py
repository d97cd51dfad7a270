"""``photometry``: MAC-Net's photometric-image input, a Lupton RGB of g, r, i cutouts.

MAC-Net (../shared/papers/macnet-2d-spectrum-photometry.txt, section 2.2-2.3) turns
the SDSS g, r, i cutouts of each target into an RGB image "according to the algorithm
described in Lupton et al. (2004)" and compresses it to [-1, 1] (its eq. 2). Here the
RGB comes from ``astropy.visualization.make_lupton_rgb`` with i -> R, r -> G, g -> B
(the reddest band in red, as every Lupton composite does), and the 8-bit image is
mapped by ``x / 127.5 - 1``: 0 -> -1, 255 -> +1.

Why one shared ``vmax`` per cutout (the default ``vmax=None``): astropy's default
interval normalises each band by its own maximum, which would make every star white;
a common upper limit over the three bands keeps the colours (a hot star blue, an M
dwarf red) while adapting to brightness, as the cutout service's fixed stretch does
for one magnitude range. Pass a number to use one fixed limit in the cutouts' units
(nanomaggies for SDSS). Non-finite pixels count as 0 (sky level).
"""

from __future__ import annotations

import numpy as np
from astropy.visualization import ManualInterval, make_lupton_rgb

from raysurvey.modalities.registry import register

#: Batch key of the decoded cutouts (CONVENTIONS.md), float [B, 3, H, W] in g, r, i order.
CUTOUT_GRI = "cutout_gri"
#: Lupton asinh parameters on cutouts normalised to [0, 1] by ``vmax``.
DEFAULT_STRETCH = 0.1
DEFAULT_Q = 8.0


def _as_cutouts(batch: dict) -> np.ndarray:
    if CUTOUT_GRI not in batch:
        raise KeyError(f"photometry needs {CUTOUT_GRI!r} in the batch (columns: {sorted(batch)})")
    x = batch[CUTOUT_GRI]
    if isinstance(x, np.ndarray) and x.dtype == object:  # a Ray batch of per-row arrays
        x = np.stack([np.asarray(row, dtype=np.float32) for row in x])
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{CUTOUT_GRI} must be [B, 3 (g, r, i), H, W], got shape {x.shape}")
    return np.where(np.isfinite(x), x, 0.0)


def lupton_rgb(
    gri: np.ndarray,
    vmax: float | None = None,
    stretch: float = DEFAULT_STRETCH,
    q: float = DEFAULT_Q,
) -> np.ndarray:
    """One [3, H, W] g, r, i cutout as a uint8 [H, W, 3] Lupton RGB (i, r, g -> R, G, B).

    The cutout is divided by ``vmax`` (default: its maximum over the three bands) so
    that ``stretch`` is in units of that limit; astropy's Lupton mapping subtracts the
    interval's lower limit (0, the sky) and applies the asinh stretch in data units.
    """
    top = float(gri.max()) if vmax is None else float(vmax)
    if not top > 0:  # an empty or all-negative cutout: black
        return np.zeros((*gri.shape[1:], 3), dtype=np.uint8)
    g, r, i = gri / top
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 where the sky is 0
        return make_lupton_rgb(
            i, r, g, interval=ManualInterval(vmin=0.0, vmax=1.0), stretch=stretch, Q=q
        )


@register(
    "photometry",
    description="Lupton RGB of g, r, i cutouts (i, r, g -> R, G, B) in [-1, 1], "
    "float32 [B, H, W, 3]",
)
def photometry(
    batch: dict[str, np.ndarray],
    vmax: float | None = None,
    stretch: float = DEFAULT_STRETCH,
    q: float = DEFAULT_Q,
) -> np.ndarray:
    """Lupton RGB of each cutout scaled to [-1, 1], float32 [B, H, W, 3]."""
    cutouts = _as_cutouts(batch)
    rgb = np.stack([lupton_rgb(c, vmax, stretch, q) for c in cutouts])
    return (rgb.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)
