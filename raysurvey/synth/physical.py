"""A built-in physical spectrum model: the fallback source that needs no template files.

``PhysicalSource`` draws rest-frame spectra of every kind in ``KINDS`` from a compact,
vectorised parametric model on a uniform log10 grid (``DLOGLAM`` = 2e-5 dex, about
13.8 km/s per pixel), then applies ``gaussian_broaden`` once so every feature has the
instrumental width. It is meant to give a classifier the right *kind* of structure
(continuum shape, which lines and bands appear at which temperature, emission versus
absorption); it is not meant to match real spectra line by line.

What is modelled
----------------
Stars (O B A F G K M, Carbon, WD)
    A Planck continuum at Teff, times ``exp(-tau)`` where ``tau`` sums Gaussian lines
    (in log wavelength) and molecular bands:

    * Balmer series (n = 3..20, vacuum wavelengths), strength peaking near A0 (9500 K),
      a narrow core plus a pressure-broadened wing whose width grows with log g; white
      dwarfs (DA) get strengths peaking near 12500 K and wings several times wider.
      A Balmer jump (opacity below 3647 A) scales with the Balmer strength.
    * Metal lines: Ca II H&K, Ca I 4227, the CH G band, Fe I blends, Mg b, Na D, K I,
      the Ca II triplet, Mg II 4482 (A stars) and Si II 6347/6371 (late B, A). Their
      equivalent widths grow toward cooler stars and are multiplied by
      ``10 ** (0.5 * [Fe/H])`` (the square-root curve-of-growth scaling of partly
      saturated lines); a few get a mild log g term
      (Na D, K I stronger in dwarfs, the Ca II triplet in giants). A smooth UV
      line-blanketing opacity below ~4000 A grows toward cool, metal-rich stars.
    * He I (B stars, peaking near 20000 K) and He II (O stars, rising to 45000 K).
    * M stars: TiO band heads (4955, 5167, 5448, 6159, 6651, 7054, 7589, 8432 A) as
      sawtooths (sudden drop at the head, degrading redward over 150-200 A), deeper as
      Teff falls and scaled by ``10 ** (0.3 * [Fe/H])``; CaH near 6382 and 6750 A,
      deeper in dwarfs.
    * Carbon stars: C2 Swan bands (heads 4383, 4737, 5165, 5636 A, degrading blueward)
      and CN red bands (7088, 7874, 8000 A, degrading redward), depths drawn per star.

    Teff is uniform in the class range; the subclass digit is
    ``int(10 * (Teff_hot - Teff) / (Teff_hot - Teff_cool))`` clipped to 0..9.

GALAXY
    An old population (a 4200-4800 K blackbody with a 4000 A break and Ca H&K, G band,
    Mg b, Na D, Fe absorption at the galaxy's velocity dispersion) mixed with a young one
    (a 12000-18000 K blackbody with Balmer absorption and a Lyman limit). Half are
    star forming (subclass "STARFORMING", a larger young fraction) and get nebular
    emission ([O II] 3727/3730, H-delta, H-gamma, H-beta, [O III] 4960/5008,
    [N II] 6550/6585, H-alpha, [S II] 6718/6733) with FWHM 100-200 km/s, H-alpha/H-beta
    flux ratio 3-5 and random line ratios.

QSO
    A power law ``f_lambda ~ lambda ** -(2 + alpha_nu)`` with ``alpha_nu ~ N(-0.5, 0.3)``
    (``f_nu ~ nu ** alpha_nu``), broad emission lines (Ly-alpha, N V, Si IV, C IV,
    C III], Mg II, H-gamma, H-beta, H-alpha; two Gaussian components, FWHM 2000-8000 km/s)
    with rest equivalent widths scattered log-normally around rounded composite values
    from Vanden Berk et al. 2001, AJ 122, 549 (Ly-alpha ~90 A, C IV ~25 A, C III] ~20 A,
    Mg II ~30 A, H-beta ~45 A, H-alpha ~200 A), narrow [O III] 4960/5008, a Ly-alpha
    forest blueward of 1215.67 A (random narrow absorbers rescaled to a mean
    transmission drawn from 0.70-0.80) and a partial Lyman limit below 912 A.

What is not modelled
--------------------
Model atmospheres (real M-star and hot-star continua differ strongly from a Planck
curve), line-by-line metal spectra, rotation, Lorentzian damping wings (every line here is
a Gaussian in log wavelength), luminosity-class subclasses, He-rich or metal-polluted
white dwarfs, dust reddening, galaxy Ly-alpha, QSO Fe II pseudo-continuum, the small blue
bump, O VI/Ly-beta emission, and the Ly-alpha forest's redshift evolution (the rest-frame
forest here has the same statistics for every QSO). The ``teff``/``logg``/``feh`` truth
is returned for stars only; white dwarfs carry a drawn [Fe/H] that does not affect their
(pure-hydrogen) spectrum.
"""

from __future__ import annotations

import numpy as np

from raysurvey.synth.source import KINDS, STAR_KINDS, RestFrameSpectrum, gaussian_broaden

__all__ = [
    "DLOGLAM",
    "LOGG_RANGES",
    "PhysicalSource",
    "TEFF_RANGES",
    "subclass_for",
]

#: Grid step in log10(wavelength / Angstrom).
DLOGLAM = 2e-5
#: Rest-frame coverage (Angstrom): stars from 2000 A, galaxies and QSOs from 900 A.
LAM_MIN_STAR = 2000.0
LAM_MIN_EXTRAGALACTIC = 900.0
LAM_MAX = 11000.0

C_KMS = 299_792.458
#: h c / k in Angstrom Kelvin (second radiation constant).
HC_OVER_K = 1.438_776_877e8
LN10 = float(np.log(10.0))
SQRT2PI = float(np.sqrt(2.0 * np.pi))

#: Teff range (K) per stellar class: (cool, hot).
TEFF_RANGES: dict[str, tuple[float, float]] = {
    "O": (30000.0, 45000.0),
    "B": (10500.0, 30000.0),
    "A": (7500.0, 10000.0),
    "F": (6000.0, 7500.0),
    "G": (5200.0, 6000.0),
    "K": (3900.0, 5200.0),
    "M": (2400.0, 3900.0),
    "Carbon": (2500.0, 4500.0),
    "WD": (6000.0, 40000.0),
}

#: Dwarf (or only) log g range per stellar class; G, K, M are giants 25 % of the time.
LOGG_RANGES: dict[str, tuple[float, float]] = {
    "O": (3.5, 4.5),
    "B": (3.5, 4.5),
    "A": (4.0, 4.7),
    "F": (4.0, 4.7),
    "G": (4.0, 4.7),
    "K": (4.0, 4.7),
    "M": (4.5, 5.2),
    "Carbon": (0.0, 2.0),
    "WD": (7.5, 8.5),
}
GIANT_KINDS = ("G", "K", "M")
GIANT_FRACTION = 0.25
GIANT_LOGG = (1.0, 3.0)

# Balmer series (vacuum): lambda_n = lambda_limit * n^2 / (n^2 - 4).
BALMER_LIMIT = 4.0 / 1.096_775_83e-3  # 3647.05 A
_BALMER_N = np.arange(3, 21)
BALMER_LAM = BALMER_LIMIT * _BALMER_N**2 / (_BALMER_N**2 - 4.0)
#: Relative equivalent widths along the series (H-beta = 1).
BALMER_REL = np.concatenate([[0.75, 1.0, 1.0, 1.0], 0.9 * 0.85 ** (_BALMER_N[4:] - 7.0)])

# Metal lines (vacuum A): lambda, EW at 5800 K solar [Fe/H] (A), cool-side exponent k
# (EW ~ (5800/T)^k below 5800 K), hot-side e-folding (K), log g slope, intrinsic sigma
# (km/s; G band and Fe blends are wider blends).
_METAL = np.array(
    [
        # lam,     ew,   k,   hot,    g,     sig
        (3934.78, 18.0, 0.3, 1500.0, 0.00, 15.0),  # Ca II K
        (3969.59, 14.0, 0.3, 1500.0, 0.00, 15.0),  # Ca II H
        (4046.96, 0.8, 1.5, 1200.0, 0.00, 30.0),  # Fe I blend
        (4227.92, 1.2, 3.0, 1000.0, 0.10, 15.0),  # Ca I
        (4300.00, 4.0, 1.5, 1000.0, 0.00, 400.0),  # CH G band
        (4384.78, 0.8, 1.5, 1200.0, 0.00, 30.0),  # Fe I blend
        (4405.99, 0.6, 1.5, 1200.0, 0.00, 30.0),  # Fe I blend
        (5168.76, 0.9, 1.5, 1200.0, 0.05, 15.0),  # Mg b
        (5174.13, 1.2, 1.5, 1200.0, 0.05, 15.0),  # Mg b
        (5185.05, 1.5, 1.5, 1200.0, 0.05, 15.0),  # Mg b
        (5270.98, 0.5, 1.5, 1200.0, 0.00, 30.0),  # Fe I blend (Lick Fe5270)
        (5329.52, 0.4, 1.5, 1200.0, 0.00, 30.0),  # Fe I blend (Lick Fe5335)
        (5891.58, 0.75, 3.0, 1000.0, 0.15, 15.0),  # Na D2
        (5897.56, 0.55, 3.0, 1000.0, 0.15, 15.0),  # Na D1
        (7667.01, 0.20, 5.0, 800.0, 0.20, 15.0),  # K I
        (7701.08, 0.15, 5.0, 800.0, 0.20, 15.0),  # K I
        (8500.36, 1.0, 0.5, 1500.0, -0.08, 15.0),  # Ca II triplet
        (8544.44, 3.5, 0.5, 1500.0, -0.08, 15.0),  # Ca II triplet
        (8664.52, 2.7, 0.5, 1500.0, -0.08, 15.0),  # Ca II triplet
    ]
)

# Lines with a temperature peak (vacuum A): lambda, peak EW (A), peak Teff (K),
# width in log10 Teff, intrinsic sigma (km/s), scales with [Fe/H] (1) or not (0).
_PEAKED = np.array(
    [
        (4482.38, 0.50, 10000.0, 0.20, 15.0, 1.0),  # Mg II (the A-star line)
        (6348.85, 0.30, 12000.0, 0.15, 15.0, 1.0),  # Si II
        (6373.12, 0.20, 12000.0, 0.15, 15.0, 1.0),  # Si II
        (4027.33, 0.80, 20000.0, 0.11, 40.0, 0.0),  # He I
        (4472.73, 1.00, 20000.0, 0.11, 40.0, 0.0),  # He I
        (4923.30, 0.50, 20000.0, 0.11, 40.0, 0.0),  # He I
        (5017.08, 0.35, 20000.0, 0.11, 40.0, 0.0),  # He I
        (5877.25, 0.90, 20000.0, 0.11, 40.0, 0.0),  # He I
        (6679.99, 0.50, 20000.0, 0.11, 40.0, 0.0),  # He I
        (4201.00, 0.40, 45000.0, 0.09, 40.0, 0.0),  # He II
        (4542.86, 0.70, 45000.0, 0.09, 40.0, 0.0),  # He II
        (4687.02, 0.90, 45000.0, 0.09, 40.0, 0.0),  # He II
        (5413.02, 0.80, 45000.0, 0.09, 40.0, 0.0),  # He II
    ]
)

# Molecular bands: head (A), length (A), relative depth.
_TIO = np.array(
    [
        (4955.0, 150.0, 0.45),
        (5167.0, 150.0, 0.50),
        (5448.0, 150.0, 0.45),
        (6159.0, 150.0, 0.60),
        (6651.0, 200.0, 0.55),
        (7054.0, 200.0, 0.80),
        (7589.0, 150.0, 0.50),
        (8432.0, 150.0, 0.45),
    ]
)
_CAH = np.array([(6382.0, 60.0, 0.30), (6750.0, 100.0, 0.35)])
_C2 = np.array(
    [(4383.0, 200.0, 0.7), (4737.0, 200.0, 0.9), (5165.0, 200.0, 1.0), (5636.0, 200.0, 0.8)]
)
_CN = np.array([(7088.0, 200.0, 0.8), (7874.0, 150.0, 0.7), (8000.0, 300.0, 0.6)])

TIO_ONSET_TEFF = 4200.0
#: Cap on a single line's central optical depth: stronger lines are made wider instead.
TAU_MAX = 2.0

# QSO broad lines (vacuum A) and typical rest equivalent widths (A), rounded after
# Vanden Berk et al. 2001 (AJ 122, 549), Table 2.
QSO_BROAD = np.array(
    [
        (1215.67, 90.0),  # Ly-alpha
        (1240.14, 5.0),  # N V (weak once separated from Ly-alpha's wing)
        (1399.80, 8.0),  # Si IV + O IV]
        (1549.06, 25.0),  # C IV
        (1908.73, 20.0),  # C III]
        (2798.75, 30.0),  # Mg II
        (4341.68, 12.0),  # H-gamma
        (4862.68, 45.0),  # H-beta
        (6564.61, 200.0),  # H-alpha
    ]
)
QSO_OIII = (4960.30, 5008.24)
LYA = 1215.67
LYMAN_LIMIT = 911.75

# Nebular lines (vacuum A).
OII = (3727.09, 3729.88)
OIII = (4960.30, 5008.24)
NII = (6549.86, 6585.27)
SII = (6718.29, 6732.67)
H_ALPHA, H_BETA, H_GAMMA, H_DELTA = (float(x) for x in BALMER_LAM[:4])


def subclass_for(kind: str, teff: float) -> str:
    """Truth subclass: class letter plus digit for O-M, the bare name for Carbon and WD."""
    if kind in ("Carbon", "WD"):
        return kind
    cool, hot = TEFF_RANGES[kind]
    digit = int(np.clip(int(10.0 * (hot - teff) / (hot - cool)), 0, 9))
    return f"{kind}{digit}"


def _balmer_strength(teff: float, peak: float) -> float:
    """Balmer strength on 0..1: a Gaussian in log Teff, wider on the hot side."""
    x = np.log10(teff / peak)
    width = 0.25 if x > 0 else 0.12
    return float(np.exp(-0.5 * (x / width) ** 2))


class PhysicalSource:
    """Compact physical model of stars, galaxies and QSOs (see the module docstring).

    The wavelength grid and line tables are built once; ``draw`` costs a few
    milliseconds. Spectra of galaxies and QSOs start at 900 A, stars at 2000 A, all on
    the same log10 grid (pixel ``i`` of a star is pixel ``i + offset`` of a QSO).
    """

    name = "physical"

    def __init__(self) -> None:
        self.dloglam = DLOGLAM
        # Anchor the grid on a multiple of the step so every spectrum shares one lattice.
        lo = np.floor(np.log10(LAM_MIN_EXTRAGALACTIC) / DLOGLAM)
        hi = np.ceil(np.log10(LAM_MAX) / DLOGLAM)
        self._k0 = int(lo)
        self.loglam = (lo + np.arange(int(hi - lo) + 1)) * DLOGLAM
        self.lam = 10.0**self.loglam
        self.loglam0 = float(self.loglam[0])
        self._istar = int(np.searchsorted(self.lam, LAM_MIN_STAR, side="right")) - 1
        self._pix = np.arange(self.lam.size, dtype=np.float64)
        self._hc_k_over_lam = HC_OVER_K / self.lam
        self._lam_m5 = (self.lam / 5000.0) ** -5.0
        # Norm window 4000-8000 A: a contiguous slice (in full-grid pixels).
        self._norm = slice(*np.searchsorted(self.lam, [4000.0, 8000.0]))
        # Smooth opacity shapes, computed once.
        self._blanket = np.where(self.lam < 5000.0, (4000.0 / self.lam) ** 6, 0.0)
        self._jump = 0.5 * (1.0 - np.tanh((self.lam - BALMER_LIMIT) / 15.0))
        self._break4000 = 0.5 * (1.0 - np.tanh((self.lam - 4000.0) / 40.0))
        self._lyman = np.where(self.lam < LYMAN_LIMIT, (self.lam / LYMAN_LIMIT) ** 3, 0.0)
        i_ll, i_lya = np.searchsorted(self.lam, [LYMAN_LIMIT, LYA])
        self._forest = (int(i_ll), int(i_lya))

    # ------------------------------------------------------------------ protocol

    def kinds(self) -> tuple[str, ...]:
        return KINDS

    def draw(self, kind: str, rng: np.random.Generator, resolution: float) -> RestFrameSpectrum:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        if not resolution > 0:
            raise ValueError(f"resolution must be positive, got {resolution!r}")
        if kind in STAR_KINDS:
            return self._star(kind, rng, resolution)
        if kind == "GALAXY":
            return self._galaxy(rng, resolution)
        return self._qso(rng, resolution)

    # ------------------------------------------------------------------ helpers

    def _planck(self, teff: float, start: int = 0) -> np.ndarray:
        """B_lambda(T) up to a constant, on the grid from pixel ``start``."""
        out = np.multiply(self._hc_k_over_lam[start:], 1.0 / teff)
        np.expm1(out, out=out)
        return np.divide(self._lam_m5[start:], out, out=out)

    def _pixel(self, lam: np.ndarray | float, start: int) -> np.ndarray:
        return (np.log10(lam) / DLOGLAM - self._k0) - start

    def _add_gaussians(
        self,
        out: np.ndarray,
        start: int,
        lam: np.ndarray,
        sigma_kms: np.ndarray,
        amp: np.ndarray,
        nsig: float = 5.0,
    ) -> None:
        """Add ``amp * exp(-x^2/2)`` Gaussians in log wavelength to ``out`` in place.

        ``out`` holds the grid from full-grid pixel ``start``; widths are velocity sigmas.
        """
        lam, sigma_kms, amp = np.broadcast_arrays(
            np.asarray(lam, float), np.asarray(sigma_kms, float), np.asarray(amp, float)
        )
        centres = self._pixel(lam, start)
        sig_pix = sigma_kms / (C_KMS * LN10 * DLOGLAM)
        los = np.maximum((centres - nsig * sig_pix).astype(int), 0)
        his = np.minimum((centres + nsig * sig_pix).astype(int) + 2, out.size)
        pix = self._pix
        for c, s, a, lo, hi in zip(centres, sig_pix, amp, los, his, strict=True):
            if a == 0.0 or lo >= hi:
                continue
            x = (pix[lo:hi] - c) / s
            out[lo:hi] += a * np.exp(-0.5 * x * x)

    def _add_absorption(
        self,
        tau: np.ndarray,
        start: int,
        lam: np.ndarray,
        ew: np.ndarray,
        sigma_kms: np.ndarray,
    ) -> None:
        """Add absorption lines of nominal equivalent width ``ew`` (A) to ``tau``.

        Central optical depth is ``ew / (sqrt(2 pi) sigma_lambda)``; a line that would
        exceed ``TAU_MAX`` is widened instead (a crude curve of growth).
        """
        lam, ew, sigma_kms = np.broadcast_arrays(
            np.asarray(lam, float), np.asarray(ew, float), np.asarray(sigma_kms, float)
        )
        sig_lam = lam * sigma_kms / C_KMS
        sig_lam = np.maximum(sig_lam, ew / (SQRT2PI * TAU_MAX))
        keep = ew > 1e-4
        tau0 = ew[keep] / (SQRT2PI * sig_lam[keep])
        self._add_gaussians(tau, start, lam[keep], sig_lam[keep] / lam[keep] * C_KMS, tau0)

    def _add_emission(
        self,
        flux: np.ndarray,
        start: int,
        lam: np.ndarray,
        line_flux: np.ndarray,
        fwhm_kms: np.ndarray,
    ) -> None:
        """Add Gaussian emission lines of integrated flux ``line_flux`` (flux x A)."""
        lam, line_flux, fwhm_kms = np.broadcast_arrays(
            np.asarray(lam, float), np.asarray(line_flux, float), np.asarray(fwhm_kms, float)
        )
        sigma_kms = fwhm_kms / 2.3548
        peak = line_flux / (SQRT2PI * lam * sigma_kms / C_KMS)
        self._add_gaussians(flux, start, lam, sigma_kms, peak)

    def _add_bands(
        self, tau: np.ndarray, start: int, bands: np.ndarray, depth: float, redward: bool
    ) -> None:
        """Sawtooth molecular bands: full depth at the head, fading linearly over L."""
        lam = self.lam[start:]
        for head, length, rel in bands:
            d = min(float(rel * depth), 0.95)
            if d <= 0.0:
                continue
            if redward:
                lo, hi = np.searchsorted(lam, [head, head + length])
                u = (lam[lo:hi] - head) / length
            else:
                lo, hi = np.searchsorted(lam, [head - length, head], side="right")
                u = (head - lam[lo:hi]) / length
            tau[lo:hi] -= np.log1p(-d * (1.0 - u))

    def _metal_lines(
        self,
        tau: np.ndarray,
        start: int,
        teff: float,
        logg: float,
        feh: float,
        sigma_extra_kms: float = 0.0,
    ) -> None:
        lam, ew0, k, hot, gslope, sig = _METAL.T
        strength = np.where(teff > 5800.0, np.exp(-(teff - 5800.0) / hot), (5800.0 / teff) ** k)
        ew = ew0 * strength * 10.0 ** (0.5 * feh + gslope * (logg - 4.4))
        sigma = np.hypot(sig, sigma_extra_kms)
        self._add_absorption(tau, start, lam, ew, sigma)

    def _peaked_lines(
        self, tau: np.ndarray, start: int, teff: float, feh: float, sigma_extra_kms: float = 0.0
    ) -> None:
        lam, ew0, tpk, width, sig, metal = _PEAKED.T
        ew = ew0 * np.exp(-0.5 * (np.log10(teff / tpk) / width) ** 2)
        ew = ew * np.where(metal > 0, 10.0 ** (0.5 * feh), 1.0)
        self._add_absorption(tau, start, lam, ew, np.hypot(sig, sigma_extra_kms))

    def _balmer(
        self,
        tau: np.ndarray,
        start: int,
        teff: float,
        logg: float,
        white_dwarf: bool = False,
        sigma_extra_kms: float = 0.0,
    ) -> float:
        """Balmer lines (core + pressure-broadened wing) and the Balmer jump.

        Returns the 0..1 strength used. EW of H-beta: ~16 A at A0 dwarfs, ~60 A for DA
        white dwarfs near 12500 K; wing sigma ~900 km/s x pressure factor.
        """
        if white_dwarf:
            s = _balmer_strength(teff, 12500.0)
            ew_peak, width = 60.0 * s + 3.0, 3.0 * (0.35 + 0.65 * s)
        else:
            s = _balmer_strength(teff, 9500.0)
            ew_peak = 16.0 * s + 0.8
            width = (0.35 + 0.65 * s) * 10.0 ** (0.3 * np.clip(logg - 4.3, -2.0, 0.5))
        ew = ew_peak * BALMER_REL
        core = np.hypot(250.0 * width, sigma_extra_kms)
        wing = np.hypot(900.0 * width, sigma_extra_kms)
        lam2 = np.concatenate([BALMER_LAM, BALMER_LAM])
        ew2 = np.concatenate([0.35 * ew, 0.65 * ew])
        sig2 = np.concatenate([np.full(ew.size, core), np.full(ew.size, wing)])
        self._add_absorption(tau, start, lam2, ew2, sig2)
        jump = 1.1 * s * (1.0 if white_dwarf else 10.0 ** (0.1 * np.clip(logg - 4.3, -3, 0.5)))
        tau += jump * self._jump[start:]
        return s

    def _finish(self, flux: np.ndarray, start: int, resolution: float) -> np.ndarray:
        flux = gaussian_broaden(flux, DLOGLAM, resolution)
        flux = np.maximum(flux, 1e-12 * float(flux.max()))
        norm = slice(self._norm.start - start, self._norm.stop - start)
        return np.ascontiguousarray(flux / np.median(flux[norm]), dtype=np.float64)

    # ------------------------------------------------------------------ kinds

    def _star(self, kind: str, rng: np.random.Generator, resolution: float) -> RestFrameSpectrum:
        cool, hot = TEFF_RANGES[kind]
        teff = float(rng.uniform(cool, hot))
        if kind in GIANT_KINDS and rng.random() < GIANT_FRACTION:
            logg = float(rng.uniform(*GIANT_LOGG))
        else:
            logg = float(rng.uniform(*LOGG_RANGES[kind]))
        feh = float(np.clip(rng.normal(-0.2, 0.35), -2.5, 0.5))

        start = self._istar
        tau = np.zeros(self.lam.size - start)
        if kind == "WD":
            self._balmer(tau, start, teff, logg, white_dwarf=True)
        else:
            self._balmer(tau, start, teff, logg)
            self._metal_lines(tau, start, teff, logg, feh)
            self._peaked_lines(tau, start, teff, feh)
            blanket = 0.3 * np.clip((7500.0 - teff) / 3000.0, 0.0, 1.5) * 10.0 ** (0.3 * feh)
            if blanket > 0:
                tau += blanket * self._blanket[start:]
            if kind == "Carbon":
                self._add_bands(tau, start, _C2, float(rng.uniform(0.2, 0.6)), redward=False)
                self._add_bands(tau, start, _CN, float(rng.uniform(0.15, 0.45)), redward=True)
            elif teff < TIO_ONSET_TEFF:
                tio = min(((TIO_ONSET_TEFF - teff) / 1300.0) ** 0.8, 1.0) * 10.0 ** (0.3 * feh)
                self._add_bands(tau, start, _TIO, tio, redward=True)
                cah = min((TIO_ONSET_TEFF - teff) / 1300.0, 1.0) * np.clip((logg - 3.5) / 1.5, 0, 1)
                self._add_bands(tau, start, _CAH, float(cah), redward=True)
        flux = self._planck(teff, start) * np.exp(-tau)
        return RestFrameSpectrum(
            loglam0=float(self.loglam[start]),
            dloglam=DLOGLAM,
            flux=self._finish(flux, start, resolution),
            kind=kind,
            subclass=subclass_for(kind, teff),
            teff=teff,
            logg=logg,
            feh=feh,
        )

    def _galaxy(self, rng: np.random.Generator, resolution: float) -> RestFrameSpectrum:
        starforming = bool(rng.random() < 0.5)
        t_old = float(rng.uniform(4200.0, 4800.0))
        t_young = float(rng.uniform(12000.0, 18000.0))
        f_young = float(rng.uniform(0.25, 0.8) if starforming else rng.uniform(0.02, 0.15))
        sigma_v = float(rng.uniform(70.0, 250.0))
        break_factor = float(rng.uniform(0.5, 0.7))
        feh = float(rng.uniform(-0.3, 0.2))

        tau_old = np.log(1.0 / break_factor) * self._break4000
        self._metal_lines(tau_old, 0, 4800.0, 3.0, feh, sigma_v)
        self._balmer(tau_old, 0, 5500.0, 3.0, sigma_extra_kms=sigma_v)
        old = self._planck(t_old) * np.exp(-tau_old)
        tau_young = 3.0 * self._lyman.copy()
        self._balmer(tau_young, 0, 11000.0, 4.0, sigma_extra_kms=sigma_v)
        young = self._planck(t_young) * np.exp(-tau_young)
        norm = self._norm
        flux = (1.0 - f_young) * old / np.mean(old[norm]) + f_young * young / np.mean(young[norm])

        if starforming:
            fwhm = float(rng.uniform(100.0, 200.0))
            ew_ha = 10.0 ** rng.uniform(1.0, 2.0)
            i_ha = int(round(float(self._pixel(H_ALPHA, 0))))
            f_ha = ew_ha * flux[i_ha]
            f_hb = f_ha / rng.uniform(3.0, 5.0)
            f_o3 = f_hb * 10.0 ** rng.uniform(-0.5, 0.5)
            f_n2 = f_ha * 10.0 ** rng.uniform(-1.0, -0.3)
            f_o2 = f_hb * 10.0 ** rng.uniform(0.0, 0.5)
            r_o2 = rng.uniform(1.0, 1.5)  # 3729 / 3727
            f_s2 = f_ha * 10.0 ** rng.uniform(-1.0, -0.5)
            r_s2 = rng.uniform(1.0, 1.4)  # 6718 / 6733
            lams = [*OII, H_DELTA, H_GAMMA, H_BETA, *OIII, *NII, H_ALPHA, *SII]
            fluxes = [
                f_o2 / (1.0 + r_o2),
                f_o2 * r_o2 / (1.0 + r_o2),
                0.26 * f_hb,
                0.47 * f_hb,
                f_hb,
                f_o3 / 2.98,
                f_o3,
                f_n2 / 3.05,
                f_n2,
                f_ha,
                f_s2 * r_s2 / (1.0 + r_s2),
                f_s2 / (1.0 + r_s2),
            ]
            self._add_emission(flux, 0, np.array(lams), np.array(fluxes), fwhm)
        return RestFrameSpectrum(
            loglam0=self.loglam0,
            dloglam=DLOGLAM,
            flux=self._finish(flux, 0, resolution),
            kind="GALAXY",
            subclass="STARFORMING" if starforming else None,
        )

    def _qso(self, rng: np.random.Generator, resolution: float) -> RestFrameSpectrum:
        alpha_nu = float(rng.normal(-0.5, 0.3))
        fwhm = float(rng.uniform(2000.0, 8000.0))
        lam_b, ew_b = QSO_BROAD.T
        scatter = rng.normal(0.0, 0.12) + rng.normal(0.0, 0.12, lam_b.size)
        ew = ew_b * 10.0 ** np.clip(scatter, -0.4, 0.4)
        fwhm_lines = fwhm * 10.0 ** np.clip(rng.normal(0.0, 0.05, lam_b.size), -0.15, 0.15)
        ew_oiii = 20.0 * 10.0 ** float(np.clip(rng.normal(0.0, 0.3), -0.8, 0.5))
        fwhm_oiii = float(rng.uniform(300.0, 600.0))
        t_mean = float(rng.uniform(0.70, 0.80))
        tau_ll = float(rng.uniform(0.3, 2.0))

        flux = (self.lam / 5000.0) ** (-(2.0 + alpha_nu))
        cont_at = (lam_b / 5000.0) ** (-(2.0 + alpha_nu))
        # Broad lines: 35 % of the EW in a core of 0.4 x FWHM, 65 % at the full FWHM.
        lams = np.concatenate([lam_b, lam_b, QSO_OIII])
        c_oiii = (np.array(QSO_OIII) / 5000.0) ** (-(2.0 + alpha_nu))
        fluxes = np.concatenate(
            [0.35 * ew * cont_at, 0.65 * ew * cont_at, [ew_oiii / 2.98, ew_oiii] * c_oiii]
        )
        widths = np.concatenate([0.4 * fwhm_lines, fwhm_lines, [fwhm_oiii, fwhm_oiii]])
        self._add_emission(flux, 0, lams, fluxes, widths)

        tau = tau_ll * self._lyman
        i0, i1 = self._forest
        tau[i0:i1] += self._forest_tau(rng, i0, i1, t_mean)
        flux *= np.exp(-tau)
        return RestFrameSpectrum(
            loglam0=self.loglam0,
            dloglam=DLOGLAM,
            flux=self._finish(flux, 0, resolution),
            kind="QSO",
            subclass="BROADLINE",
        )

    def _forest_tau(self, rng: np.random.Generator, i0: int, i1: int, t_mean: float) -> np.ndarray:
        """Random narrow Ly-alpha absorbers on pixels i0..i1, scaled to mean exp(-tau)."""
        n = i1 - i0
        n_abs = int(rng.poisson(1.0 * (LYA - LYMAN_LIMIT)))  # ~1 absorber per A
        centre = rng.uniform(0.0, n - 1.0, n_abs)
        sig = rng.uniform(1.0, 2.0, n_abs)  # pixels: b ~ 20-40 km/s
        amp = 10.0 ** rng.uniform(-1.0, 1.0, n_abs)
        offs = np.arange(-8, 9)
        idx = np.floor(centre).astype(np.int64)[:, None] + offs[None, :]
        w = amp[:, None] * np.exp(-0.5 * ((idx - centre[:, None]) / sig[:, None]) ** 2)
        ok = (idx >= 0) & (idx < n)
        tau = np.bincount(idx[ok], weights=w[ok], minlength=n)
        # Newton from s = 0 (g(s) = mean(exp(-s tau)) - t_mean is convex, decreasing).
        s = 0.0
        for _ in range(30):
            e = np.exp(-s * tau)
            g = float(e.mean()) - t_mean
            if abs(g) < 1e-6:
                break
            s -= g / -float((tau * e).mean())
        return s * tau
