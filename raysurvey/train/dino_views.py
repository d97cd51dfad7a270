"""DINO's multi-crop views for spectrum images, made in flux space and then rendered.

Image-space crops and colour jitter do not fit the encodings: ``map2d`` folds the
spectrum row-major into 3 x 3 blocks (an image crop would cut the fold, not a
wavelength range) and its colours are flux values (colour jitter would change the
encoding itself). So every view starts from the grid flux of the spectrum:

1. a random window along the wavelength axis (a share ``global_scale`` of the grid
   for the global views, ``local_scale`` for the local ones), linearly resampled back
   to the full grid length, which the renderer then turns into an image of the model's
   size (the spectral analogue of DINO's random-resized crops);
2. flux-scale jitter: the whole spectrum times ``exp(N(0, scale_sigma))``;
3. noise: Gaussian with a standard deviation of ``U(0, noise_max)`` times the
   spectrum's median absolute flux.

Then the modality's own renderer (``simple``, ``overlap``, ``map2d``) draws the view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysurvey.modalities.batch import fill_gaps
from raysurvey.modalities.registry import compute


@dataclass(frozen=True)
class ViewConfig:
    n_global: int = 2
    n_local: int = 4
    global_scale: tuple[float, float] = (0.5, 1.0)  # share of the grid a global view keeps
    local_scale: tuple[float, float] = (0.15, 0.4)
    scale_sigma: float = 0.2  # log-normal flux-scale jitter
    noise_max: float = 0.05  # noise sigma up to this times the median |flux|

    @property
    def n_views(self) -> int:
        return self.n_global + self.n_local


def crop_resize(flux: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Rows of ``flux`` [B, N] cut to [start, start + length) (fractional pixels) and
    resampled linearly back to N pixels."""
    batch, n = flux.shape
    out = np.empty_like(flux, dtype=np.float32)
    grid = np.arange(n, dtype=np.float64)
    for i in range(batch):
        x = start[i] + (length[i] - 1) * grid / max(n - 1, 1)  # positions in the row
        out[i] = np.interp(x, grid, flux[i])
    return out


def jitter(flux: np.ndarray, rng: np.random.Generator, cfg: ViewConfig) -> np.ndarray:
    """Flux-scale jitter and Gaussian noise (see the module docstring)."""
    batch = flux.shape[0]
    scale = np.exp(rng.normal(0.0, cfg.scale_sigma, size=(batch, 1)))
    level = np.median(np.abs(flux), axis=1, keepdims=True)
    sigma = rng.uniform(0.0, cfg.noise_max, size=(batch, 1)) * level
    return (flux * scale + rng.normal(size=flux.shape) * sigma).astype(np.float32)


def random_crops(
    flux: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]
) -> np.ndarray:
    batch, n = flux.shape
    length = rng.uniform(*scale, size=batch) * n
    start = rng.uniform(0.0, 1.0, size=batch) * (n - length)
    return crop_resize(flux, start, length)


def make_views(
    flux: np.ndarray,
    survey: np.ndarray | None,
    modality: str,
    options: dict | None,
    rng: np.random.Generator,
    cfg: ViewConfig | None = None,
) -> list[np.ndarray]:
    """``cfg.n_global`` global then ``cfg.n_local`` local views of each spectrum, each a
    uint8 image batch [B, H, W, 3] from ``modality``'s renderer."""
    cfg = cfg or ViewConfig()
    flux = fill_gaps(np.asarray(flux, dtype=np.float32))
    views = []
    for v in range(cfg.n_views):
        scale = cfg.global_scale if v < cfg.n_global else cfg.local_scale
        view = jitter(random_crops(flux, rng, scale), rng, cfg)
        batch = {"flux": view} | ({"survey": survey} if survey is not None else {})
        views.append(compute(modality, batch, **(options or {})))
    return views
