"""Spectra drawn from the Redrock templates (real-data-derived PCA bases and archetypes).

The Redrock files (desihub/redrock-templates; read from a user-given directory,
never copied into the project) hold, per type, basis vectors and for stars and
galaxies the coefficients of hundreds to thousands of archetypes, each a
real-looking object. A draw picks an archetype of the requested kind, perturbs its
coefficients by a few per cent (diversity the PCA space allows), and evaluates the
basis on a uniform log-wavelength grid already broadened to the survey's resolving
power: the basis is broadened once per resolution, and broadening commutes with the
linear combination.

The files carry no digit subclasses, Teff, log g or [Fe/H]. Those are assigned by a
documented mapping (docs/synthetic.md) from quantities that are linear in the
coefficients, so they are computed for every archetype at once from band means of
the basis:
- colour = mean flux 4000-4500 A / mean flux 6500-7000 A; within a class, archetypes
  are ranked by colour, and the rank quantile q (0 = bluest) gives the subclass digit
  floor(10 q) and Teff interpolated across the class's Teff range;
- for F, G, K and M, a metal-line index (Mg b 5160-5195 A against its two side bands)
  is regressed on colour; the residual's rank quantile maps to [Fe/H] through the
  quantiles of N(-0.2, 0.35) dex; other classes draw [Fe/H] from that normal;
- log g is drawn per class (25 % giants among G, K, M): a label only, not in the flux;
- O stars (no template exists): the bluest 20 % of B archetypes, continuum steepened
  by the ratio of Planck curves B(Teff_O) / B(20000 K), plus He II 4201, 4543, 4687,
  5413 A and He I 4473 A absorption whose depth grows with Teff_O;
- Carbon (a single basis vector): a Planck-ratio temperature change (2500-4500 K
  around 3500 K) and a band-depth power law (flux / envelope) ** alpha,
  alpha in [0.5, 1.6], so C2/CN band strength varies from star to star;
- galaxies: archetypes with H-alpha in emission (line band over side bands > 1.15)
  are "STARFORMING"; QSOs: the BOSS eigenspectra with c0 = 1 and c1..c3 drawn so each
  eigenvector adds ~15 % of the mean QSO's norm, redrawn if flux goes negative.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from astropy.io import fits

from raysurvey.synth.source import KINDS, RestFrameSpectrum, gaussian_broaden

#: File per kind; O stars are built from B archetypes.
TEMPLATE_FILES: dict[str, str] = {
    "O": "rrtemplate-star-B.fits",
    "B": "rrtemplate-star-B.fits",
    "A": "rrtemplate-star-A.fits",
    "F": "rrtemplate-star-F.fits",
    "G": "rrtemplate-star-G.fits",
    "K": "rrtemplate-star-K.fits",
    "M": "rrtemplate-star-M.fits",
    "WD": "rrtemplate-star-WD.fits",
    "Carbon": "rrtemplate-star-Carbon.fits",
    "GALAXY": "rrtemplate-galaxy.fits",
    "QSO": "rrtemplate-qso.fits",
}
#: The DR16Q-based QSO bases (Redrock's LOZ and HIZ), used beside the BOSS one for
#: variety when a draw's redshift is known (``RedrockSource.draw_qso``).
QSO_BASES_BY_Z: tuple[tuple[float, float, str], ...] = (
    (0.0, 1.5, "rrtemplate-qso-LOZ.fits"),
    (1.5, 7.0, "rrtemplate-qso-HIZ.fits"),
)

#: Teff range (K) per class, hottest first: subclass digit 0 at the hot end.
TEFF_RANGES: dict[str, tuple[float, float]] = {
    "O": (45000.0, 30000.0),
    "B": (30000.0, 10500.0),
    "A": (10000.0, 7500.0),
    "F": (7500.0, 6000.0),
    "G": (6000.0, 5200.0),
    "K": (5200.0, 3900.0),
    "M": (3900.0, 2400.0),
    "Carbon": (4500.0, 2500.0),
    "WD": (40000.0, 6000.0),
}
METAL_CLASSES = ("F", "G", "K", "M")
GIANT_CLASSES = ("G", "K", "M")
FEH_MEAN, FEH_SIGMA = -0.2, 0.35
FINE_DLOGLAM = 2e-5
COEFF_JITTER = 0.03

BLUE_BAND = (4000.0, 4500.0)
RED_BAND = (6500.0, 7000.0)
MGB_BAND, MGB_SIDES = (5160.0, 5195.0), ((5130.0, 5155.0), (5195.0, 5230.0))
HALPHA_BAND, HALPHA_SIDES = (6555.0, 6575.0), ((6520.0, 6545.0), (6590.0, 6615.0))
O_STAR_LINES = ((4200.7, 0.5), (4542.9, 0.7), (4687.0, 1.0), (5413.0, 0.6), (4472.7, 0.3))


def planck(wavelength_aa: np.ndarray, teff: float) -> np.ndarray:
    """Planck B_lambda (arbitrary scale) at ``teff`` kelvin."""
    x = 1.4387769e8 / (wavelength_aa * teff)  # hc / (lambda k T), lambda in A
    return wavelength_aa**-5 / np.expm1(np.minimum(x, 700.0))


def _band_mean(wave: np.ndarray, basis: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    sel = (wave >= band[0]) & (wave < band[1])
    return basis[:, sel].mean(axis=1)


def _rank_quantile(values: np.ndarray) -> np.ndarray:
    """Quantile in (0, 1) of each value's rank (ties broken by order)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size)
    return (ranks + 0.5) / values.size


@dataclass(frozen=True)
class _Template:
    """One template file resampled to a uniform log grid (unbroadened)."""

    loglam0: float
    dloglam: float
    basis: np.ndarray  # (n_vectors, n_pix)
    coeffs: np.ndarray | None  # (n_archetypes, n_vectors)


def _load(path: str) -> _Template:
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        basis = np.asarray(hdul[0].data, dtype=np.float64)
        coeffs = (
            np.asarray(hdul["ARCHETYPE_COEFF"].data, np.float64)
            if "ARCHETYPE_COEFF" in hdul
            else None
        )
    crval, cdelt = float(header["CRVAL1"]), float(header["CDELT1"])
    if basis.ndim == 1:
        basis = basis[None, :]
    if header.get("LOGLAM"):
        return _Template(crval, cdelt, basis, coeffs)
    # Linear-lambda file: average onto a uniform log grid (flux-conserving box means).
    wave = crval + cdelt * np.arange(basis.shape[1])
    lo, hi = np.log10(wave[0]), np.log10(wave[-1])
    n_fine = int((hi - lo) / FINE_DLOGLAM)
    edges = 10 ** (lo + FINE_DLOGLAM * (np.arange(n_fine + 1) - 0.5))
    cumulative = np.concatenate(
        [np.zeros((basis.shape[0], 1)), np.cumsum(basis, axis=1) * cdelt], 1
    )
    native_edges = np.concatenate([[wave[0] - cdelt / 2], wave + cdelt / 2])
    at_edges = np.array([np.interp(edges, native_edges, row) for row in cumulative])
    fine = np.diff(at_edges, axis=1) / np.diff(edges)
    return _Template(lo, FINE_DLOGLAM, fine, coeffs)


@dataclass(frozen=True)
class _Archetypes:
    """Per-archetype truth labels for one kind."""

    index: np.ndarray  # archetype rows usable for this kind
    digit: np.ndarray
    teff: np.ndarray
    feh: np.ndarray  # NaN: draw
    starforming: np.ndarray


class RedrockSource:
    """``SpectrumSource`` over a directory of Redrock template files."""

    name = "redrock"

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        missing = [f for f in set(TEMPLATE_FILES.values()) if not os.path.exists(self._path(f))]
        if missing:
            raise FileNotFoundError(
                f"Redrock template directory {self.directory!r} lacks {sorted(missing)}"
            )

    def _path(self, filename: str) -> str:
        return os.path.join(self.directory, filename)

    def kinds(self) -> tuple[str, ...]:
        return KINDS

    @functools.cache  # noqa: B019 - one source per process, lives as long as it
    def _template(self, filename: str) -> _Template:
        return _load(self._path(filename))

    @functools.cache  # noqa: B019
    def _broadened(self, filename: str, resolution: float) -> np.ndarray:
        template = self._template(filename)
        return np.array([gaussian_broaden(v, template.dloglam, resolution) for v in template.basis])

    @functools.cache  # noqa: B019
    def archetypes(self, kind: str) -> _Archetypes:
        """Truth labels of every archetype usable for ``kind`` (see module docstring)."""
        template = self._template(TEMPLATE_FILES[kind])
        wave = 10 ** (template.loglam0 + template.dloglam * np.arange(template.basis.shape[1]))
        coeffs = template.coeffs if template.coeffs is not None else np.ones((1, 1))
        basis = template.basis
        colour = (coeffs @ _band_mean(wave, basis, BLUE_BAND)) / (
            coeffs @ _band_mean(wave, basis, RED_BAND)
        )
        index = np.arange(coeffs.shape[0])
        if kind in ("O", "B"):
            bluest = colour >= np.quantile(colour, 0.8)
            index = index[bluest] if kind == "O" else index[~bluest]
        quantile = 1.0 - _rank_quantile(colour[index])  # 0 = bluest
        n = index.size
        digit = np.minimum((quantile * 10).astype(int), 9)
        feh = np.full(n, np.nan)
        starforming = np.zeros(n, bool)
        if kind in TEFF_RANGES:
            hot, cool = TEFF_RANGES[kind]
            teff = hot + (cool - hot) * quantile
        else:
            teff = np.full(n, np.nan)
        if kind in METAL_CLASSES and n > 2:
            line = coeffs[index] @ _band_mean(wave, basis, MGB_BAND)
            sides = sum(coeffs[index] @ _band_mean(wave, basis, b) for b in MGB_SIDES) / 2
            depth = 1.0 - line / sides
            slope, intercept = np.polyfit(colour[index], depth, 1)
            residual = depth - (slope * colour[index] + intercept)
            normal = np.array([NormalDist().inv_cdf(q) for q in _rank_quantile(residual)])
            feh = np.clip(FEH_MEAN + FEH_SIGMA * normal, -2.5, 0.5)
        if kind == "GALAXY":
            line = coeffs @ _band_mean(wave, basis, HALPHA_BAND)
            sides = sum(coeffs @ _band_mean(wave, basis, b) for b in HALPHA_SIDES) / 2
            starforming = line / sides > 1.15
        return _Archetypes(index, digit, teff, feh, starforming)

    def draw(self, kind: str, rng: np.random.Generator, resolution: float) -> RestFrameSpectrum:
        if kind not in TEMPLATE_FILES:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        filename = TEMPLATE_FILES[kind]
        template = self._template(filename)
        basis = self._broadened(filename, float(resolution))
        wave = 10 ** (template.loglam0 + template.dloglam * np.arange(basis.shape[1]))
        if kind == "QSO":
            flux = self._qso(basis, wave, rng)
            return RestFrameSpectrum(template.loglam0, template.dloglam, flux, kind, "BROADLINE")
        if kind == "Carbon":
            return self._carbon(basis[0], wave, template, rng)
        arche = self.archetypes(kind)
        pick = int(rng.integers(arche.index.size))
        coeff = template.coeffs[arche.index[pick]]
        coeff = coeff * (1.0 + COEFF_JITTER * rng.standard_normal(coeff.size))
        flux = coeff @ basis
        if kind == "GALAXY":
            subclass = "STARFORMING" if arche.starforming[pick] else None
            flux = _positive(flux)
            return RestFrameSpectrum(template.loglam0, template.dloglam, flux, kind, subclass)
        teff = float(arche.teff[pick])
        digit = int(arche.digit[pick])
        if kind == "O":
            teff = float(rng.uniform(*TEFF_RANGES["O"][::-1]))
            hot, cool = TEFF_RANGES["O"]
            digit = min(int(10 * (hot - teff) / (hot - cool)), 9)
            flux = _o_star(flux, wave, teff, template.dloglam, resolution)
        feh = float(arche.feh[pick]) if np.isfinite(arche.feh[pick]) else _draw_feh(rng)
        subclass = "WD" if kind == "WD" else f"{kind}{digit}"
        return RestFrameSpectrum(
            template.loglam0,
            template.dloglam,
            _positive(flux),
            kind,
            subclass,
            teff=teff,
            logg=draw_logg(kind, rng),
            feh=feh,
        )

    def draw_qso(
        self, rng: np.random.Generator, resolution: float, z: float, spread: float = 0.3
    ) -> RestFrameSpectrum:
        """A QSO for redshift ``z`` from the BOSS basis or, half the time, the DR16Q
        basis for that redshift (LOZ below 1.5, HIZ above), eigenvector weights of
        ``spread`` of the mean QSO's norm (``draw`` uses 0.15)."""
        filename = TEMPLATE_FILES["QSO"]
        for low, high, name in QSO_BASES_BY_Z:
            if low <= z < high and os.path.exists(self._path(name)) and rng.random() < 0.5:
                filename = name
        template = self._template(filename)
        basis = self._broadened(filename, float(resolution))
        if np.median(basis[0]) < 0:  # PCA signs are arbitrary: the mean QSO is positive
            basis = np.vstack([-basis[0], basis[1:]])
        wave = 10 ** (template.loglam0 + template.dloglam * np.arange(basis.shape[1]))
        flux = self._qso(basis, wave, rng, spread)
        return RestFrameSpectrum(template.loglam0, template.dloglam, flux, "QSO", "BROADLINE")

    def _qso(
        self,
        basis: np.ndarray,
        wave: np.ndarray,
        rng: np.random.Generator,
        spread: float = 0.15,
    ) -> np.ndarray:
        norms = np.linalg.norm(basis, axis=1)
        window = (wave > 1000) & (wave < 9000)
        n_vectors = basis.shape[0] - 1
        for _ in range(10):
            weights = spread * norms[0] / norms[1:] * rng.standard_normal(n_vectors)
            coeff = np.concatenate([[1.0], weights])
            flux = coeff @ basis
            if np.mean(flux[window] <= 0) < 0.002:
                break
        return _positive(flux)

    def _carbon(self, vector, wave, template, rng) -> RestFrameSpectrum:
        teff = float(rng.uniform(*TEFF_RANGES["Carbon"][::-1]))
        flux = np.maximum(vector, 1e-3 * np.median(np.abs(vector)))
        envelope = _upper_envelope(flux, 301)
        alpha = float(rng.uniform(0.5, 1.6))
        flux = envelope * (flux / envelope) ** alpha
        flux *= planck(wave, teff) / planck(wave, 3500.0)
        hot, cool = TEFF_RANGES["Carbon"]
        return RestFrameSpectrum(
            template.loglam0,
            template.dloglam,
            _positive(flux),
            "Carbon",
            "Carbon",
            teff=teff,
            logg=draw_logg("Carbon", rng),
            feh=_draw_feh(rng),
        )


def _o_star(flux, wave, teff, dloglam, resolution) -> np.ndarray:
    flux = flux * planck(wave, teff) / planck(wave, 20000.0)
    strength = 0.05 + 0.10 * (teff - 30000.0) / 15000.0
    absorption = np.zeros_like(wave)
    for centre, weight in O_STAR_LINES:
        absorption += weight * strength * np.exp(-0.5 * ((wave - centre) / 3.0) ** 2)
    return flux * gaussian_broaden(1.0 - absorption, dloglam, resolution)


def _upper_envelope(flux: np.ndarray, width: int) -> np.ndarray:
    """A smooth curve over the spectrum's peaks: running max, then running mean."""
    from numpy.lib.stride_tricks import sliding_window_view

    half = width // 2
    padded = np.pad(flux, half, mode="edge")
    running_max = sliding_window_view(padded, width).max(axis=1)
    kernel = np.ones(width) / width
    return np.convolve(np.pad(running_max, half, mode="edge"), kernel, mode="valid")


def _positive(flux: np.ndarray) -> np.ndarray:
    """Clip the few negative pixels a PCA combination can produce."""
    floor = 1e-3 * float(np.median(np.abs(flux)))
    return np.maximum(flux, floor)


def _draw_feh(rng: np.random.Generator) -> float:
    return float(np.clip(rng.normal(FEH_MEAN, FEH_SIGMA), -2.5, 0.5))


def draw_logg(kind: str, rng: np.random.Generator) -> float:
    """Surface gravity label per class (dex); drawn, not measured from the flux."""
    if kind == "WD":
        return float(rng.uniform(7.5, 8.5))
    if kind == "Carbon":
        return float(rng.uniform(0.0, 2.0))
    if kind in GIANT_CLASSES and rng.random() < 0.25:
        return float(rng.uniform(1.0, 3.0))
    if kind == "M":
        return float(rng.uniform(4.5, 5.2))
    if kind in ("O", "B"):
        return float(rng.uniform(3.5, 4.5))
    return float(rng.uniform(4.0, 4.7))
