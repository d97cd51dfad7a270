"""Choosing the best minimum, its error, and the Z_UNRELIABLE decision.

- **Best**: the refined candidate with the lowest chi^2 (across classes when several
  were fitted).
- **Error**: from the chi^2 curvature, delta chi^2 = 1: with chi^2 ~ chi2_min + a (s -
  s0)^2 in lattice pixels, sigma_s = 1 / sqrt(a), and ``z_err = ln(10) 1e-4 (1 + z)
  sigma_s``, scaled by sqrt(chi2 / dof) when the fit is worse than the noise says (real
  spectra: template mismatch, sky residuals), never scaled down, with a floor of
  ``ERR_FLOOR_KMS`` in quadrature.
- **Unreliable** (catalog bit Z_UNRELIABLE) when any of: the second-best minimum more
  than ``min_separation_kms`` away is within ``delta_chi2_min`` of the best (the data
  cannot tell the two redshifts apart; Redrock's small-delta-chi^2 warning); the best
  sits on the edge of the searched range; the curvature is not positive; fewer than
  ``min_good_pixels`` pixels carry information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raysurvey.redshift.templates import C_KMS
from raysurvey.spectra.grid import DLOGLAM

#: delta chi^2 below which two separated minima are indistinguishable (chosen on the
#: synthetic split, docs/redshift.md).
DELTA_CHI2_MIN = 25.0
MIN_GOOD_PIXELS = 200
#: Added in quadrature to the curvature error: the parabola's sub-pixel interpolation
#: error, measured on synthetic spectra (docs/redshift.md).
ERR_FLOOR_KMS = 3.0


@dataclass(frozen=True)
class QualityConfig:
    delta_chi2_min: float = DELTA_CHI2_MIN
    min_good_pixels: int = MIN_GOOD_PIXELS


def assess(
    chi2: torch.Tensor,
    shift: torch.Tensor,
    curvature: torch.Tensor,
    edge: torch.Tensor,
    n_par: torch.Tensor,
    n_good: torch.Tensor,
    min_sep_px: float,
    cfg: QualityConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Best candidate, its redshift, error and reliability for (B, C) candidate tensors.

    Returns
    -------
    dict
        ``best`` (B,) candidate index, ``z``, ``z_err``, ``chi2``, ``rchi2`` (chi^2 / dof),
        ``delta_chi2`` (second best minus best, inf when there is no second),
        ``unreliable`` (bool).
    """
    cfg = cfg or QualityConfig()
    best = chi2.argmin(1)
    take = best[:, None]
    chi2_best = chi2.gather(1, take)[:, 0]
    s_best = shift.gather(1, take)[:, 0]
    a = curvature.gather(1, take)[:, 0]
    far = (shift - s_best[:, None]).abs() > min_sep_px
    second = torch.where(far, chi2, float("inf")).amin(1)
    delta = second - chi2_best
    dof = (n_good - n_par.gather(1, take)[:, 0]).clamp_min(1)
    rchi2 = chi2_best / dof
    sigma_px = torch.where(a > 0, 1.0 / a.clamp_min(1e-300).sqrt(), float("nan"))
    sigma_px = sigma_px * rchi2.clamp_min(1.0).sqrt()
    z = 10.0 ** (s_best * DLOGLAM) - 1.0
    floor_px = ERR_FLOOR_KMS / (C_KMS * np.log(10.0) * DLOGLAM)
    sigma_px = torch.sqrt(sigma_px**2 + floor_px**2)
    z_err = np.log(10.0) * DLOGLAM * (1.0 + z) * sigma_px
    # nothing fitted, or no more good pixels than coefficients: no redshift at all (NaN)
    failed = ~torch.isfinite(chi2_best) | (n_good <= n_par.gather(1, take)[:, 0])
    unreliable = (
        (delta < cfg.delta_chi2_min)
        | edge.gather(1, take)[:, 0]
        | ~(a > 0)
        | (n_good < cfg.min_good_pixels)
        | failed
    )
    z = torch.where(failed, float("nan"), z)
    return {
        "best": best,
        "z": z,
        "z_err": torch.where(failed, float("nan"), z_err),
        "chi2": chi2_best,
        "rchi2": rchi2,
        "delta_chi2": delta,
        "unreliable": unreliable,
    }
