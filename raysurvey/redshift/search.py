"""Coarse-to-fine redshift search over one class's template sets.

1. **Coarse**: spectra and templates are binned ``factor`` lattice pixels to one
   (inverse-variance weighted; 2 for galaxies = 138 km/s steps, 4 for QSOs, whose lines
   are thousands of km/s wide), and ``ShiftChi2`` gives chi^2 at every coarse shift of
   every template set of the class.
2. **Candidates**: the ``n_candidates`` lowest coarse minima, each at least
   ``min_separation_kms`` from the ones already taken (across the class's sets).
3. **Fine**: at full resolution, chi^2 at every integer shift within ``factor + 2``
   pixels of each candidate (``chi2_window``), then a parabola through the lowest point and
   its two neighbours gives the sub-pixel shift and the curvature (the error estimate,
   ``raysurvey.redshift.quality``).

Everything is batched over spectra; the loops run over template sets and candidates
only (a few each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raysurvey.redshift.chi2 import (
    ShiftChi2,
    SpectrumSide,
    bin_spectra,  # noqa: F401 - re-exported (it lived here)
    chi2_at_zero,
    chi2_windows,
)
from raysurvey.redshift.templates import C_KMS, TemplateSet
from raysurvey.spectra.grid import DLOGLAM

#: km/s per lattice pixel (1e-4 dex).
KMS_PER_PIXEL = C_KMS * np.log(10.0) * DLOGLAM


@dataclass(frozen=True)
class SearchConfig:
    """Search settings (defaults chosen by measurement, docs/redshift.md).

    Attributes
    ----------
    npoly : int
        Legendre terms added to every template fit (calibration differences).
    factors : tuple of (str, int)
        Coarse binning factor per class.
    n_candidates : int
        Coarse minima refined at full resolution.
    min_separation_kms : float
        Minimum distance between candidates (and between best and second best).
    preselect : int
        For a class of many sets around z = 0 (stars), search only the ``preselect``
        sets that fit best at z = 0 (0: all).
    exclude : tuple of str
        Template sets not searched (names as in ``TEMPLATE_SETS``). By default the
        DR16Q low-/high-z QSO sets: on the real SDSS/BOSS QSOs they agree less often with
        the pipeline z than the BOSS eigenspectra alone (docs/redshift.md).
    """

    npoly: int = 3
    factors: tuple[tuple[str, int], ...] = (("GALAXY", 2), ("QSO", 4), ("STAR", 1))
    n_candidates: int = 3
    min_separation_kms: float = 1000.0
    exclude: tuple[str, ...] = ("qso-LOZ", "qso-HIZ")
    preselect: int = 2

    def factor(self, cls: str) -> int:
        return dict(self.factors)[cls]


@dataclass
class Candidates:
    """Refined minima per spectrum, (B, C) tensors unless noted.

    Attributes
    ----------
    chi2 : minimum chi^2 (parabola vertex; inf where no candidate).
    shift : fractional lattice shift of the minimum.
    curvature : a in chi^2 ~ chi2 + a (s - shift)^2 (per pixel^2; <= 0: unmeasured).
    set_index : index of the template set in the list searched.
    edge : True where the minimum sits on the set's shift range edge.
    n_par : number of fitted coefficients.
    """

    chi2: torch.Tensor
    shift: torch.Tensor
    curvature: torch.Tensor
    set_index: torch.Tensor
    edge: torch.Tensor
    n_par: torch.Tensor


def coarse_chi2(side: SpectrumSide, sets: list[TemplateSet], factor: int, use=None):
    """Coarse chi^2 curves of all sets concatenated: (chi2 (B, S), fine shift (S,), set (S,)).

    ``side``: the batch at full resolution (binned here, cached there); ``use`` (B,
    n_sets) bool: sets searched per spectrum (others: chi^2 inf).
    """
    coarse_side = side.binned(factor)
    b, dev = side.x.shape[0], side.x.device
    curves, shifts, owners = [], [], []
    for i, tset in enumerate(sets):
        coarse = tset.binned(factor)
        n_shift = coarse.s_max - coarse.s_min + 1
        if use is None:
            curves.append(ShiftChi2.from_side(coarse_side, coarse).chi2_all())
        else:
            curve = side.x.new_full((b, n_shift), float("inf"))
            rows = torch.nonzero(use[:, i])[:, 0]
            if rows.numel():
                part = ShiftChi2.from_side(coarse_side.rows(rows), coarse)
                curve[rows] = part.chi2_all()
            curves.append(curve)
        s = torch.arange(coarse.s_min, coarse.s_max + 1, device=dev) * factor
        shifts.append(s)
        owners.append(torch.full_like(s, i))
    return torch.cat(curves, 1), torch.cat(shifts), torch.cat(owners)


def pick_candidates(chi2, shifts, owners, n: int, min_sep_px: float):
    """The ``n`` lowest points of ``chi2`` (B, S), each > ``min_sep_px`` from those taken.

    Returns (fine shift (B, n), set index (B, n), valid (B, n), column in ``chi2`` (B, n)).
    """
    work = chi2.clone()
    picked_s, picked_o, valid, picked_j = [], [], [], []
    for _ in range(n):
        j = work.argmin(1)  # (B,)
        best = work.gather(1, j[:, None])[:, 0]
        s = shifts[j]
        picked_j.append(j)
        picked_s.append(s)
        picked_o.append(owners[j])
        valid.append(torch.isfinite(best))
        near = (shifts[None, :] - s[:, None]).abs() <= min_sep_px
        work = work.masked_fill(near, float("inf"))
    stack = [torch.stack(v, 1) for v in (picked_s, picked_o, valid, picked_j)]
    return tuple(stack)


def parabola(y: torch.Tensor):
    """Vertex of the parabola through (-1, 0, +1) -> y[..., 0:3]: (offset, value, curvature)."""
    ym, y0, yp = y[..., 0], y[..., 1], y[..., 2]
    a = 0.5 * (yp + ym - 2 * y0)
    b = 0.5 * (yp - ym)
    ok = a > 0
    offset = torch.where(ok, (-b / (2 * a).clamp_min(1e-300)).clamp(-1.0, 1.0), 0.0)
    value = torch.where(ok, y0 + b * offset + a * offset**2, y0)
    return offset, value, torch.where(ok, a, 0.0)


def refine(side: SpectrumSide, sets, shifts, owners, valid, halfwidth: int) -> Candidates:
    """Full-resolution chi^2 around each candidate, parabola at the lowest point."""
    dev = side.x.device
    width = 2 * halfwidth + 1
    fine, trial = chi2_windows(side, sets, owners, shifts - halfwidth, valid, width)
    j = fine.argmin(-1).clamp(1, width - 2)  # (B, C): centre of the three points
    three = fine.gather(-1, j[..., None] + torch.tensor([-1, 0, 1], device=dev))
    centre = trial.gather(-1, j[..., None])[..., 0]
    return vertex(three, centre, sets, owners, valid, side.npoly)


def vertex(three, centre, sets, owners, valid, npoly: int) -> Candidates:
    """Candidates from chi^2 at (centre - 1, centre, centre + 1) (B, C, 3) by a parabola."""
    dev, dt = three.device, three.dtype
    centre = centre.to(dt)
    finite3 = torch.isfinite(three).all(-1)
    offset, value, curv = parabola(torch.where(finite3[..., None], three, 0.0))
    at_min = three.argmin(-1)
    shift = torch.where(finite3, centre + offset, centre + (at_min - 1).to(dt))
    value = torch.where(finite3, value, three.amin(-1))
    curv = torch.where(finite3, curv, 0.0)
    s_lo = torch.tensor([t.s_min for t in sets], device=dev)[owners]
    s_hi = torch.tensor([t.s_max for t in sets], device=dev)[owners]
    s_best = torch.round(shift).long()
    edge = (s_best <= s_lo) | (s_best >= s_hi) | ~finite3
    n_par = torch.tensor([t.n_vectors + npoly for t in sets], device=dev)[owners]
    value = torch.where(valid, value, float("inf"))
    return Candidates(value, shift, curv, owners, edge, n_par)


def preselect(side: SpectrumSide, sets: list[TemplateSet], keep: int):
    """(B, n_sets) mask of the ``keep`` sets with the lowest chi^2 at z = 0 per spectrum.

    For classes of many sets over a narrow range around z = 0 (stars: eight spectral
    types within +-1000 km/s), the best type hardly depends on the exact velocity, so
    only the best few types are searched.
    """
    at_zero = chi2_at_zero(side, sets)
    order = at_zero.argsort(1)[:, :keep]
    return torch.zeros_like(at_zero, dtype=torch.bool).scatter_(1, order, True)


def search(side: SpectrumSide, sets: list[TemplateSet], factor: int, cfg: SearchConfig):
    """Coarse-to-fine search of one class's sets for a batch (``SpectrumSide``, full res).

    Returns the refined ``Candidates``.
    """
    use = None
    if 0 < cfg.preselect < len(sets) and all(t.s_min <= 0 <= t.s_max for t in sets):
        use = preselect(side, sets, cfg.preselect)
    chi2, shifts, owners = coarse_chi2(side, sets, factor, use)
    min_sep = cfg.min_separation_kms / KMS_PER_PIXEL
    s, o, valid, j = pick_candidates(chi2, shifts, owners, cfg.n_candidates, min_sep)
    if factor > 1:
        return refine(side, sets, s, o, valid, factor + 2)
    # full resolution already: the parabola through the curve's neighbours (inf across sets)
    n = chi2.shape[1]
    cols = j[..., None] + torch.tensor([-1, 0, 1], device=chi2.device)  # (B, C, 3)
    inside = (cols >= 0) & (cols < n)
    cols = cols.clamp(0, n - 1)
    same = owners[cols] == o[..., None]
    three = torch.where(
        inside & same, chi2.gather(1, cols.reshape(len(s), -1)).view(cols.shape), float("inf")
    )
    return vertex(three, s, sets, o, valid, side.npoly)
