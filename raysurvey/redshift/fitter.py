"""``RedshiftFitter``: redshifts of spectra on the common grid, by template chi^2.

The class (from the class3 classifier, or given) picks the template sets searched:
GALAXY -0.005 < z < 1.2, QSO 0.05 < z < 4.5 (BOSS eigenspectra plus the DR16Q
low-/high-z sets), STAR |v| < 1000 km/s (A, B, F, G, K, M, WD, Carbon bases; z = v/c).
A spectrum whose class is unknown (None, "", "UNKNOWN", "ALL") is fitted with every
class and the lowest chi^2 wins (``spectype`` says which).

Example
-------
>>> fitter = RedshiftFitter("../shared/templates/redrock")  # doctest: +SKIP
>>> out = fitter.fit(flux, ivar, ["QSO", "GALAXY"])  # doctest: +SKIP
>>> out["z"], out["z_err"], out["unreliable"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from raysurvey.redshift.chi2 import SpectrumSide
from raysurvey.redshift.clean import CLIP_SIGMA, spike_mask
from raysurvey.redshift.quality import QualityConfig, assess
from raysurvey.redshift.search import KMS_PER_PIXEL, SearchConfig, search
from raysurvey.redshift.templates import CLASSES, load_templates

UNKNOWN = ("", "UNKNOWN", "ALL", "NONE")


def normalise_classes(classes, n: int) -> list[tuple[str, ...]]:
    """Per spectrum, the classes to fit (all of them where the class is unknown)."""
    if classes is None or isinstance(classes, str):
        classes = [classes] * n
    if len(classes) != n:
        raise ValueError(f"{len(classes)} classes for {n} spectra")
    out = []
    for c in classes:
        name = "" if c is None else str(c).strip().upper()
        if name in UNKNOWN:
            out.append(CLASSES)
        elif name in CLASSES:
            out.append((name,))
        else:
            raise ValueError(f"unknown class {c!r}: expected one of {CLASSES} or None")
    return out


class RedshiftFitter:
    """Template-fitting redshift estimator, batched in torch (CPU or GPU).

    Parameters
    ----------
    templates_dir : path or None
        Redrock template directory (``--templates DIR``); None reads env
        ``RAYSURVEY_TEMPLATES``. Missing -> ``TemplatesNotFoundError``.
    device : str or torch.device
        Where the fit runs (``"cpu"``, ``"cuda"``).
    search_config, quality_config : optional
        See ``SearchConfig`` and ``QualityConfig``.
    resolution : float
        Resolving power the templates are broadened to.
    batch_size : int
        Spectra per batched fit (memory: ~6 MB a spectrum for QSOs).
    clip_sigma : float
        Narrow spikes above this many sigma are masked first (``clean``; 0: off).
    num_threads : int or None
        torch CPU threads during ``fit`` (restored after). 1 by default: the systems
        are small and many, so one thread per process is fastest, and more threads
        crawl on a busy machine; scale out with processes (Ray tasks). None: leave as is.
    """

    def __init__(
        self,
        templates_dir: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        search_config: SearchConfig | None = None,
        quality_config: QualityConfig | None = None,
        resolution: float = 2000.0,
        batch_size: int = 64,
        clip_sigma: float = CLIP_SIGMA,
        num_threads: int | None = 1,
    ):
        self.search_config = cfg = search_config or SearchConfig()
        self.templates = {
            cls: [t for t in sets if t.name not in cfg.exclude]
            for cls, sets in load_templates(templates_dir, CLASSES, resolution).items()
        }
        empty = [cls for cls, sets in self.templates.items() if not sets]
        if empty:
            raise ValueError(f"SearchConfig.exclude leaves no template set for {empty}")
        self.device = torch.device(device)
        self.quality_config = quality_config or QualityConfig()
        self.batch_size = batch_size
        self.clip_sigma = clip_sigma
        self.num_threads = num_threads

    @torch.inference_mode()
    def fit(self, flux, ivar, classes=None, mask=None) -> dict[str, np.ndarray]:
        """Fit a batch of spectra on the common grid (see ``fit_batch``)."""
        if self.num_threads is None or self.device.type != "cpu":
            return self.fit_batch(flux, ivar, classes, mask)
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self.fit_batch(flux, ivar, classes, mask)
        finally:
            torch.set_num_threads(before)

    def fit_batch(
        self,
        flux: np.ndarray,
        ivar: np.ndarray,
        classes: Sequence[str | None] | str | None = None,
        mask: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Fit a batch of spectra on the common grid.

        Parameters
        ----------
        flux, ivar : array (B, N)
            On the common grid (``raysurvey.spectra.to_grid``); N from 3700 up. NaN flux,
            non-positive ivar and ``mask`` True are ignored.
        classes : list of str or None, or one str for all
            GALAXY, QSO, STAR per spectrum; None (or "UNKNOWN") fits every class.

        Returns
        -------
        dict of numpy arrays (B,)
            ``z`` (float64; NaN where no fit), ``z_err`` (float64), ``unreliable`` (bool),
            ``chi2``, ``rchi2`` (chi^2 per degree of freedom), ``delta_chi2`` (second
            minimum > min_separation_kms away minus best), ``spectype`` (class of the
            best fit), ``subtype`` (template set, e.g. ``qso-HIZ``, ``star-K``); and
            ``chi2_class`` (float64 (B, 3)): the best refined chi^2 of each class in
            ``CLASSES`` order (GALAXY, QSO, STAR), inf where a class was not fitted.
        """
        flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
        ivar = np.atleast_2d(np.asarray(ivar, dtype=np.float64))
        if flux.shape != ivar.shape:
            raise ValueError(f"flux {flux.shape} and ivar {ivar.shape} differ")
        b = flux.shape[0]
        wanted = normalise_classes(classes, b)
        good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
        if mask is not None:
            good &= ~np.asarray(mask, bool)
        flux = np.where(good, flux, 0.0)
        ivar = np.where(good, ivar, 0.0)
        # per-spectrum scale (chi^2 is invariant; conditions the normal equations)
        wsum = ivar.sum(1)
        rms = np.sqrt((ivar * flux**2).sum(1) / np.maximum(wsum, 1e-300))
        scale = np.where(rms > 0, rms, 1.0)[:, None]
        flux_t = torch.from_numpy(flux / scale).to(self.device)
        ivar_t = torch.from_numpy(ivar * scale**2).to(self.device)
        if self.clip_sigma > 0:
            ivar_t = ivar_t.masked_fill(spike_mask(flux_t, ivar_t, self.clip_sigma), 0.0)

        nc = self.search_config.n_candidates
        n_cls = len(CLASSES)
        shape = (b, n_cls * nc)
        chi2 = torch.full(shape, float("inf"), dtype=torch.float64, device=self.device)
        shift = torch.zeros(shape, dtype=torch.float64, device=self.device)
        curv = torch.zeros_like(shift)
        edge = torch.zeros(shape, dtype=torch.bool, device=self.device)
        n_par = torch.ones(shape, dtype=torch.long, device=self.device)
        set_index = torch.zeros(shape, dtype=torch.long, device=self.device)
        fits = np.array([[cls in w for cls in CLASSES] for w in wanted], dtype=bool).reshape(b, -1)
        for start in range(0, b, self.batch_size):
            chunk = slice(start, min(start + self.batch_size, b))
            # the spectrum side (channels, their FFTs, binned copies) is shared by all classes
            side = SpectrumSide(flux_t[chunk], ivar_t[chunk], self.search_config.npoly)
            for ci, cls in enumerate(CLASSES):
                local = np.flatnonzero(fits[chunk, ci])
                if not local.size:
                    continue
                local_t = torch.from_numpy(local).to(self.device)
                rows = local_t + start
                cand = search(
                    side.rows(local_t),
                    self.templates[cls],
                    self.search_config.factor(cls),
                    self.search_config,
                )
                cols = slice(ci * nc, (ci + 1) * nc)
                chi2[rows, cols] = cand.chi2
                shift[rows, cols] = cand.shift
                curv[rows, cols] = cand.curvature
                edge[rows, cols] = cand.edge
                n_par[rows, cols] = cand.n_par
                set_index[rows, cols] = cand.set_index
        n_good = ivar_t.gt(0).sum(1)
        min_sep = self.search_config.min_separation_kms / KMS_PER_PIXEL
        out = assess(chi2, shift, curv, edge, n_par, n_good, min_sep, self.quality_config)
        best = out.pop("best").cpu().numpy()
        result = {k: v.cpu().numpy() for k, v in out.items()}
        # best refined chi^2 per class (CLASSES order), inf where a class was not fitted
        result["chi2_class"] = chi2.view(b, n_cls, nc).amin(-1).cpu().numpy()
        cls_idx = best // nc
        sets = set_index.gather(1, torch.from_numpy(best).to(self.device)[:, None])[:, 0]
        sets = sets.cpu().numpy()
        result["spectype"] = np.array([CLASSES[c] for c in cls_idx], dtype=object)
        result["subtype"] = np.array(
            [self.templates[CLASSES[c]][s].name for c, s in zip(cls_idx, sets, strict=True)],
            dtype=object,
        )
        return result
