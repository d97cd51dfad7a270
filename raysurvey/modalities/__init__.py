"""Modalities: the views of a spectrum the published models see, computed per batch.

Public API (stable): ``list_modalities()`` and ``compute(name, batch, **options)``.
``batch`` is the batch dict of CONVENTIONS.md (``flux`` [B, N] on the common grid,
``survey`` for per-survey variants) or a float [B, N] array of grid flux. Images are
uint8 [B, 224, 224, 3]; audio features float32 [B, F, T]; ``audio`` a dict of the
three. Pure numpy/torch: no Ray here (the pipeline lives in ``raysurvey.data``).
"""

from raysurvey.modalities import audio, flux1d, images, map2d  # noqa: F401  (registration)
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
