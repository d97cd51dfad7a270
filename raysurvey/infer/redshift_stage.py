"""The redshift step of ``classify_release``: template-fit ``z_pred`` for every ok row.

Given a Redrock template directory (``--templates DIR`` or ``s3://.../templates/``),
each predictor actor loads a ``RedshiftFitter`` once and fits every ok row of its
batches with the templates of the row's ``pred_class`` (all classes when no class
bundle runs): ``z_pred``, ``z_pred_err`` and the Z_UNRELIABLE bit. Stars get z = v / c.
With the template check (the default) every class is fitted too: ``template_class``
is the class whose templates fit best, and TEMPLATE_DISAGREES is set where it beats
``pred_class`` decisively: a physical second opinion on the network's class.
The grid flux and ivar reach the predictor beside the modalities and are dropped
there, so nothing heavy comes back to the driver.

The plan records the template files (names and sizes): a resumed catalog refuses
other templates, as it refuses other bundles. See docs/redshift.md.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import fsspec
import numpy as np

from raysurvey.infer.catalog import REGRESSION_COLUMNS, BundleRole, CatalogPlanError

METHOD = "template_chi2"
#: TEMPLATE_DISAGREES when the row's own class fits worse than the best class by more
#: than this chi^2, in units of the best fit's reduced chi^2 (template mismatch on real
#: spectra inflates chi^2; a clean fit is left as is). 25: the same "decisive" delta
#: chi^2 as Z_UNRELIABLE's (docs/redshift.md), fixed in advance, not fitted to data.
TEMPLATE_DELTA_CHI2 = 25.0
TEMPLATE_GLOB = "rrtemplate-*.fits"


@dataclass(frozen=True)
class RedshiftPlan:
    """Where the templates are and which files they are (their fingerprint)."""

    templates: str
    fingerprint: str
    files: tuple[str, ...]
    #: Fit every class too, for ``template_class`` and the TEMPLATE_DISAGREES bit.
    template_check: bool = True

    def summary(self) -> dict:
        """What the catalog plan and metadata record of the redshift step."""
        return {
            "method": METHOD,
            "templates": self.templates,
            "fingerprint": self.fingerprint,
            "classes_from": "pred_class",
            "template_check": self.template_check,
            "template_delta_chi2": TEMPLATE_DELTA_CHI2 if self.template_check else None,
        }


def template_files(uri: str) -> list[tuple[str, int]]:
    """(name, size) of the template files under ``uri`` (local directory or s3:// prefix)."""
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        found = fs.glob(f"{path.rstrip('/')}/{TEMPLATE_GLOB}", detail=True)
    except FileNotFoundError:
        found = {}
    return sorted(
        (os.path.basename(name), int(info.get("size") or 0)) for name, info in found.items()
    )


def plan_redshift(
    templates: str | None, roles: Sequence[BundleRole], template_check: bool = True
) -> RedshiftPlan | None:
    """The redshift step for ``templates`` (None: no step), checked against the bundles.

    A regression bundle predicting ``z`` and the template fit would both fill
    ``z_pred``: that is refused, as two bundles filling one column are.
    """
    if templates is None:
        return None
    for role in roles:
        if role.task != "classify" and "z" in role.labels:
            raise CatalogPlanError(
                f"{role.uri} fills {REGRESSION_COLUMNS['z']} and so would the template fit "
                f"of {templates}: give one of them"
            )
    files = template_files(templates)
    if not files:
        raise CatalogPlanError(
            f"--templates {templates}: no {TEMPLATE_GLOB} files there (a Redrock template "
            "directory, e.g. ../shared/templates/redrock)"
        )
    digest = hashlib.sha256("\n".join(f"{n} {s}" for n, s in files).encode()).hexdigest()
    return RedshiftPlan(templates, digest, tuple(n for n, _ in files), template_check)


@functools.cache
def local_templates(uri: str) -> str:
    """A local directory holding the templates of ``uri`` (downloaded once per process
    when ``uri`` is remote, so every node of a cluster can read an s3:// copy)."""
    if "://" not in uri or uri.startswith("file://"):
        return uri.removeprefix("file://")
    fs, path = fsspec.core.url_to_fs(uri)
    target = tempfile.mkdtemp(prefix="raysurvey-templates-")
    for name in fs.glob(f"{path.rstrip('/')}/{TEMPLATE_GLOB}"):
        fs.get(name, os.path.join(target, os.path.basename(name)))
    return target


class RedshiftFill:
    """Fits the ok rows of a batch; loaded once per predictor actor."""

    def __init__(self, plan: RedshiftPlan, device):
        from raysurvey.redshift import RedshiftFitter

        self.plan = plan
        self.check = plan.template_check
        self.delta_chi2 = TEMPLATE_DELTA_CHI2
        # CPU actors keep their one torch thread (the fitter's own default is 1 too).
        self.fitter = RedshiftFitter(local_templates(plan.templates), device=device)

    def __call__(
        self, flux: np.ndarray, ivar: np.ndarray, classes: Sequence[str | None]
    ) -> dict[str, np.ndarray]:
        """Per row: ``z``, ``z_err`` (float32, NaN where no fit), ``unreliable`` (bool; also
        where nothing could be fitted), ``template_class`` (the class whose templates fit
        best; None without the check) and ``disagrees`` (TEMPLATE_DISAGREES, bool).

        ``z`` is always the fit of the row's own class; a row with no class (None or a
        label that is not a class3 one, e.g. a stellar-type bundle used alone) is fitted
        with every class.
        """
        from raysurvey.redshift import CLASSES

        n = len(flux)
        wanted = np.array([c if c in CLASSES else None for c in classes], dtype=object)
        out = {
            "z": np.full(n, np.nan, np.float32),
            "z_err": np.full(n, np.nan, np.float32),
            "unreliable": np.ones(n, dtype=bool),
            "template_class": np.full(n, None, dtype=object),
            "disagrees": np.zeros(n, dtype=bool),
        }
        if n == 0:
            return out
        fit = self.fitter.fit(flux, ivar, None if self.check else list(wanted))
        own = np.ones(n, dtype=bool)
        if self.check:
            out["template_class"] = np.where(np.isfinite(fit["z"]), fit["spectype"], None)
            # rows whose class is not the best-fitting one: refit with their own class
            best = fit["spectype"]
            own = np.array([w is None or w == b for w, b in zip(wanted, best, strict=True)])
            other = np.flatnonzero(~own)
            if len(other):
                refit = self.fitter.fit(flux[other], ivar[other], list(wanted[other]))
                self._take(out, refit, other)
                rchi2 = np.maximum(fit["rchi2"][other], 1.0)
                delta = (refit["chi2"] - fit["chi2"][other]) / rchi2
                out["disagrees"][other] = delta > self.delta_chi2
        self._take(out, fit, np.flatnonzero(own), own)
        return out

    @staticmethod
    def _take(out: dict, fit: dict, rows: np.ndarray, select=slice(None)) -> None:
        z = fit["z"][select]
        out["z"][rows] = z
        out["z_err"][rows] = fit["z_err"][select]
        out["unreliable"][rows] = np.asarray(fit["unreliable"][select], bool) | ~np.isfinite(z)
