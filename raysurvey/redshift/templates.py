"""Redrock templates resampled onto the common grid's log-wavelength lattice.

The common grid is ``log10(lambda) = LOGLAM0 + DLOGLAM * i``. A rest-frame template
sampled on the same lattice, ``log10(lambda_rest) = LOGLAM0 + DLOGLAM * k`` for integer
``k`` (negative ``k`` reach the far ultraviolet), redshifted by ``log10(1 + z) = DLOGLAM
* s`` is exactly the template shifted by ``s`` pixels: observed pixel ``i`` sees rest
pixel ``k = i - s``. Every trial redshift on the lattice is then a slice of one array,
which is what lets ``raysurvey.redshift.chi2`` compute the fit at every integer shift
with a handful of FFT correlations.

Each template file (Redrock's format: primary HDU of basis vectors, rest frame, linear
or log10 wavelength; see ../shared/templates/redrock/README.md) is resampled by box
means (flux-conserving: the integral of the native sampling over each lattice pixel)
and broadened by a Gaussian to the surveys' resolving power (R ~ 2000 for LAMOST and
SDSS), then cut to the rest-frame range the class's redshift window needs.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from raysurvey.spectra.grid import DLOGLAM, LOGLAM0

C_KMS = 299792.458

#: Template sets per class: (name, file, z_min, z_max). Stars: z = v / c, |v| < 1000 km/s.
STAR_VMAX_KMS = 1000.0
TEMPLATE_SETS: dict[str, tuple[tuple[str, str, float, float], ...]] = {
    "GALAXY": (("galaxy", "rrtemplate-galaxy.fits", -0.005, 1.2),),
    "QSO": (
        ("qso", "rrtemplate-qso.fits", 0.05, 4.5),
        ("qso-LOZ", "rrtemplate-qso-LOZ.fits", 0.05, 1.6),
        ("qso-HIZ", "rrtemplate-qso-HIZ.fits", 1.4, 4.5),
    ),
    "STAR": tuple(
        (
            f"star-{sub}",
            f"rrtemplate-star-{sub}.fits",
            -STAR_VMAX_KMS / C_KMS,
            STAR_VMAX_KMS / C_KMS,
        )
        for sub in ("A", "B", "F", "G", "K", "M", "WD", "Carbon")
    ),
}
CLASSES = tuple(TEMPLATE_SETS)


class TemplatesNotFoundError(FileNotFoundError):
    """The template directory or one of its files is missing."""


def resolve_templates_dir(directory: str | os.PathLike | None) -> str:
    """The template directory: ``directory``, else env ``RAYSURVEY_TEMPLATES``; never a guess."""
    chosen = directory if directory is not None else os.environ.get("RAYSURVEY_TEMPLATES")
    if chosen is None:
        raise TemplatesNotFoundError(
            "no Redrock template directory: pass templates_dir (--templates DIR) or set "
            "RAYSURVEY_TEMPLATES"
        )
    chosen = os.fspath(chosen)
    if not os.path.isdir(chosen):
        raise TemplatesNotFoundError(f"Redrock template directory {chosen!r} does not exist")
    return chosen


def shift_of(z: float | np.ndarray) -> np.ndarray:
    """Lattice shift in (fractional) pixels of redshift ``z``."""
    return np.log10(1.0 + np.asarray(z, dtype=np.float64)) / DLOGLAM


def z_of(shift: float | np.ndarray) -> np.ndarray:
    """Redshift of a (fractional) lattice shift."""
    return 10.0 ** (np.asarray(shift, dtype=np.float64) * DLOGLAM) - 1.0


@dataclass(frozen=True, eq=False)  # identity hash: sets are cached per process
class TemplateSet:
    """One template file on the lattice, ready for a shift search.

    Attributes
    ----------
    name, cls : str
        e.g. ``"qso-HIZ"``, ``"QSO"``.
    basis : numpy.ndarray
        float64 (n_vectors, n_rest): rest-frame basis; column ``j`` is lattice index
        ``k = k0 + j``.
    k0 : int
        Lattice index of the first column.
    s_min, s_max : int
        Inclusive range of integer shifts searched (from the set's z range).
    factor : int
        Lattice pixels per pixel of this set (1: the common grid; see ``binned``).
    """

    name: str
    cls: str
    basis: np.ndarray
    k0: int
    s_min: int
    s_max: int

    factor: int = 1

    @property
    def n_vectors(self) -> int:
        return self.basis.shape[0]

    def binned(self, factor: int) -> TemplateSet:
        """The set on a lattice ``factor`` times coarser (box means; shifts in coarse pixels).

        Coarse pixel ``j`` covers fine pixels ``factor * j .. factor * j + factor - 1``, so
        coarse shift ``t`` is fine shift ``factor * t``.
        """
        if factor == 1:
            return self
        return _binned(self, factor)

    def rest_slice(self, n_pix: int) -> np.ndarray:
        """Basis over lattice indices ``[-s_max, n_pix - 1 - s_min]`` (zero outside coverage).

        Returns
        -------
        numpy.ndarray
            (n_vectors, n_pix + s_max - s_min): column ``j`` is ``k = j - s_max``.
        """
        lo, hi = -self.s_max, n_pix - 1 - self.s_min
        out = np.zeros((self.n_vectors, hi - lo + 1))
        a, b = max(lo, self.k0), min(hi, self.k0 + self.basis.shape[1] - 1)
        if b >= a:
            out[:, a - lo : b - lo + 1] = self.basis[:, a - self.k0 : b - self.k0 + 1]
        return out


@functools.lru_cache(maxsize=64)
def _binned(tset: TemplateSet, factor: int) -> TemplateSet:
    pad_left = tset.k0 % factor
    n = tset.basis.shape[1] + pad_left
    pad_right = (-n) % factor
    basis = np.pad(tset.basis, ((0, 0), (pad_left, pad_right)))
    basis = basis.reshape(basis.shape[0], -1, factor).mean(-1)
    return TemplateSet(
        tset.name,
        tset.cls,
        basis,
        (tset.k0 - pad_left) // factor,
        tset.s_min // factor,
        -(-tset.s_max // factor),
        tset.factor * factor,
    )


def _native_loglam_edges(header, n: int) -> np.ndarray:
    crval, cdelt = float(header["CRVAL1"]), float(header["CDELT1"])
    centres = crval + cdelt * np.arange(n)
    edges = np.concatenate([[centres[0] - cdelt / 2], centres + cdelt / 2])
    if header.get("LOGLAM"):
        return edges
    return np.log10(np.maximum(edges, 1e-3))


def _box_resample(basis: np.ndarray, native_edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Box means of ``basis`` over lattice pixels fully inside the native coverage."""
    k_lo = int(np.ceil((native_edges[0] - LOGLAM0) / DLOGLAM + 0.5))
    k_hi = int(np.floor((native_edges[-1] - LOGLAM0) / DLOGLAM - 0.5))
    k = np.arange(k_lo, k_hi + 2)
    lattice_edges = LOGLAM0 + DLOGLAM * (k - 0.5)  # (n_out + 1,)
    # integral in log-lambda of each native row, at the native edges, interpolated
    width = np.diff(native_edges)
    cumulative = np.concatenate([np.zeros((basis.shape[0], 1)), np.cumsum(basis * width, 1)], 1)
    at = np.array([np.interp(lattice_edges, native_edges, row) for row in cumulative])
    return np.diff(at, axis=1) / DLOGLAM, k_lo


def _broaden(basis: np.ndarray, resolution: float) -> np.ndarray:
    """Gaussian broadening to resolving power ``resolution`` (FWHM = c / R), less the box."""
    sigma_px = (C_KMS / resolution / 2.3548) / (C_KMS * np.log(10) * DLOGLAM)
    sigma_px = np.sqrt(max(sigma_px**2 - 1.0 / 12.0, 0.0))
    if sigma_px < 0.05:
        return basis
    half = int(np.ceil(4 * sigma_px))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sigma_px) ** 2)
    kernel /= kernel.sum()
    return np.array([np.convolve(np.pad(r, half, mode="edge"), kernel, "valid") for r in basis])


@functools.lru_cache(maxsize=64)
def load_template_set(
    directory: str,
    name: str,
    filename: str,
    cls: str,
    z_min: float,
    z_max: float,
    resolution: float,
) -> TemplateSet:
    """Read one Redrock file and put it on the lattice (cached per process)."""
    path = os.path.join(directory, filename)
    if not os.path.exists(path):
        raise TemplatesNotFoundError(f"Redrock template file {path!r} is missing")
    with fits.open(path, memmap=False) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float64)
        header = hdul[0].header
    if data.ndim == 1:
        data = data[None, :]
    basis, k0 = _box_resample(data, _native_loglam_edges(header, data.shape[1]))
    if resolution > 0:
        basis = _broaden(basis, resolution)
    # normalise each vector (the fit is linear; this only conditions the normal equations)
    basis = basis / np.maximum(np.sqrt(np.mean(basis**2, axis=1, keepdims=True)), 1e-30)
    s_min = int(np.floor(shift_of(z_min)))
    s_max = int(np.ceil(shift_of(z_max)))
    return TemplateSet(name, cls, basis, k0, s_min, s_max)


def load_templates(
    directory: str | os.PathLike | None, classes=CLASSES, resolution: float = 2000.0
) -> dict[str, list[TemplateSet]]:
    """Template sets per class from a Redrock template directory.

    Parameters
    ----------
    directory : path or None
        Redrock template directory; None reads env ``RAYSURVEY_TEMPLATES``.
    classes : iterable of str
        Classes to load (``GALAXY``, ``QSO``, ``STAR``).
    resolution : float
        Resolving power to broaden to (0: no broadening).

    Raises
    ------
    TemplatesNotFoundError
        When the directory or one of the needed files does not exist.
    """
    directory = resolve_templates_dir(directory)
    out: dict[str, list[TemplateSet]] = {}
    for cls in classes:
        if cls not in TEMPLATE_SETS:
            raise ValueError(f"unknown class {cls!r}; expected one of {CLASSES}")
        out[cls] = [
            load_template_set(directory, name, fn, cls, z0, z1, float(resolution))
            for name, fn, z0, z1 in TEMPLATE_SETS[cls]
        ]
    return out
