"""Redshifts by template fitting: Redrock's PCA templates, batched chi^2 in torch.

- ``templates``: Redrock template files on the common grid's log-lambda lattice;
- ``chi2``: linear least-squares chi^2 at every lattice shift (FFT correlations);
- ``search``: coarse-to-fine search and sub-pixel parabola refinement;
- ``quality``: best minimum, error from the chi^2 curvature, Z_UNRELIABLE;
- ``fitter``: ``RedshiftFitter``, the API;
- ``evaluate``: the metrics of ``jobs/evaluate.py --task redshift``.

See docs/redshift.md.
"""

from raysurvey.redshift.fitter import RedshiftFitter
from raysurvey.redshift.quality import QualityConfig
from raysurvey.redshift.search import SearchConfig
from raysurvey.redshift.templates import (
    CLASSES,
    TemplatesNotFoundError,
    load_templates,
    resolve_templates_dir,
)

__all__ = [
    "CLASSES",
    "QualityConfig",
    "RedshiftFitter",
    "SearchConfig",
    "TemplatesNotFoundError",
    "load_templates",
    "resolve_templates_dir",
]
