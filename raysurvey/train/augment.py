"""Training-time augmentation of the 1D flux input: what real spectra vary that a
synthetic release may not (``jobs/train.py --augment``).

Applied per row to the normalised ``flux1d`` vector [B, N] of the training split only
(after feature caching, so every epoch sees new variants): a continuum tilt (flux
calibration), a flux-scale change around the median, a masked chunk filled by linear
interpolation (as masked pixels reach the model), extra Gaussian noise (lower S/N),
a few single-pixel spikes (cosmic-ray residue) and a shift of up to three pixels
(3 x 1e-4 dex, a small redshift jitter). The result is clipped to the range the
normalisation allows. Measured in docs/real-data.md.
"""

from __future__ import annotations

import numpy as np

CLIP = (-0.25, 1.25)


def augment_flux1d(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An augmented copy of a batch of normalised spectra ``x`` [B, N] (float32)."""
    x = np.array(x, dtype=np.float32, copy=True)
    batch, n = x.shape
    t = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    for row in range(batch):
        v = x[row]
        median = float(np.median(v))
        if rng.random() < 0.5:  # continuum tilt about the median level
            v = (
                median
                + (v - median) * (1.0 + rng.uniform(-0.3, 0.3) * t)
                + 0.1 * rng.uniform(-1, 1) * t * max(median, 0.1)
            )
        if rng.random() < 0.3:  # contrast (flux scale against the normalisation range)
            v = median + (v - median) * rng.uniform(0.7, 1.3)
        if rng.random() < 0.3:  # a masked chunk, interpolated over as fill_gaps does
            width = int(rng.integers(20, 200))
            start = int(rng.integers(0, n - width))
            end = start + width
            v[start:end] = np.linspace(v[start], v[end - 1], width, dtype=np.float32)
        if rng.random() < 0.4:  # lower S/N
            v = v + rng.normal(0.0, rng.uniform(0.01, 0.08), n).astype(np.float32)
        if rng.random() < 0.3:  # unmasked spikes
            for at in rng.integers(0, n, int(rng.integers(1, 4))):
                v[at] += rng.uniform(0.3, 1.5)
        if rng.random() < 0.5:  # redshift jitter of up to 3 pixels
            shift = int(rng.integers(-3, 4))
            if shift:
                v = np.roll(v, shift)
                edge = slice(0, shift) if shift > 0 else slice(n + shift, n)
                v[edge] = v[shift] if shift > 0 else v[n + shift - 1]
        x[row] = v
    return np.clip(x, *CLIP, out=x)
