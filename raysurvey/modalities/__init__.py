"""Modalities: the views of a spectrum the published models see, computed per batch.

Public API (stable): ``list_modalities()`` and ``compute(name, batch, **options)``.
``batch`` is the batch dict of CONVENTIONS.md (``flux`` [B, N] on the common grid,
``survey`` for per-survey variants) or a float [B, N] array of grid flux. Images are
uint8 [B, 224, 224, 3]; audio features float32 [B, F, T]; ``audio`` a dict of the
three; ``stripes`` float32 [B, 2, 11, W] (blue, red) and ``photometry`` float32
[B, 64, 64, 3] in [-1, 1] from the 2D batch keys ``stripe_blue``, ``stripe_red``,
``cutout_gri``. Pure numpy/torch: no Ray here (the pipeline lives in ``raysurvey.data``).
"""

from raysurvey.modalities import (  # noqa: F401  (registration)
    audio,
    flux1d,
    images,
    map2d,
    photometry,
    stripes,
)
from raysurvey.modalities.batch import FLUX, SURVEY, as_batch, fill_gaps
from raysurvey.modalities.registry import Modality, compute, get_modality, list_modalities

__all__ = [
    "FLUX",
    "SURVEY",
    "Modality",
    "as_batch",
    "compute",
    "fill_gaps",
    "get_modality",
    "list_modalities",
]
