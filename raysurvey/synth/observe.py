"""Putting a rest-frame spectrum through a survey: redshift, pixels, sky, noise, masks.

Each survey model is a handful of numbers from the surveys' documentation: the
log-linear pixel grid (1e-4 dex; LAMOST 3690-9100 A with a length that varies per
file, SDSS legacy 3800-9200 A, BOSS 3600-10400 A), resolving power (~1800 LAMOST,
~2000 SDSS), flux units (LAMOST relative, SDSS 1e-17 erg/s/cm2/A), a smooth residual
of the flux calibration, and the sky (continuum, [O I] 5577/6300/6364, Na D, Hg
4358/5461 light pollution, the OH forest redward of 6800 A). Noise is Poisson-like
from object plus sky, scaled so the median S/N per pixel over the r band hits the
drawn value; sky-subtraction residuals sit at the sky lines; masks flag saturated
sky-line cores, dead-pixel runs (flux 0, as real files hold) and the arm join.

``realism="survey"`` (the default of releases) adds what real files show and
template draws lack: a throughput that falls towards both ends of the range (the
blue end of a faint SDSS spectrum is several times noisier than its r band), sky
residuals that differ from line to line and are several per cent of the line,
unmasked single-pixel spikes (cosmic-ray and hot-pixel residue), and for LAMOST a
flux calibration with a random power-law tilt (DR1-DR5 relative fluxes).
``realism="survey-full"`` adds Galactic reddening (CCM89, E(B-V) exponential with
mean 0.15 for stars, 0.03 for galaxies and QSOs), LAMOST blue/red arm steps and lost
regions (arm join, blue end); not yet shown to help on real spectra
(docs/real-data.md). ``realism="clean"`` is the earlier model, kept for tests of the
physics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from raysurvey.synth.source import RestFrameSpectrum

DLOGLAM = 1e-4
#: Band ranges (A) for the per-band median S/N a pipeline reports.
SNR_BANDS: dict[str, tuple[float, float]] = {
    "u": (3500.0, 4000.0),
    "g": (4000.0, 5500.0),
    "r": (5500.0, 6900.0),
    "i": (6900.0, 8400.0),
    "z": (8400.0, 9200.0),
}
SKY_LINES = ((5578.9, 1.0), (6301.7, 0.35), (6365.5, 0.12), (5891.6, 0.25), (5897.6, 0.2))
HG_LINES = ((4359.6, 0.3), (5462.3, 0.35), (5771.2, 0.1), (5792.3, 0.1))
#: Mask bits (as the pipelines name them; values are this generator's).
NODATA, BRIGHTSKY, BADARM = 1 << 0, 1 << 4, 1 << 8


@dataclass(frozen=True)
class SurveyModel:
    """Pixel grid, resolution and calibration quality of one survey configuration."""

    name: str
    survey: str
    resolution: float
    loglam_start: tuple[float, float]
    n_pix: tuple[int, int]
    calibration_error: float  # rms of the smooth multiplicative calibration residual
    hg_lines: bool  # LAMOST sits near towns: mercury street-light lines
    arm_join: tuple[float, float] | None  # dichroic region with extra noise (A)


SURVEY_MODELS: dict[str, SurveyModel] = {
    "lamost": SurveyModel(
        "lamost", "lamost", 1800.0, (3.5665, 3.5685), (3880, 3910), 0.08, True, (5700.0, 5900.0)
    ),
    "sdss_legacy": SurveyModel(
        "sdss_legacy", "sdss", 2000.0, (3.5797, 3.5800), (3820, 3860), 0.04, False, (5800.0, 6000.0)
    ),
    "boss": SurveyModel(
        "boss", "sdss", 2000.0, (3.5523, 3.5530), (4610, 4650), 0.04, False, (5800.0, 6300.0)
    ),
}


@dataclass(frozen=True)
class ObservedSpectrum:
    """Native-pixel arrays as a survey pipeline writes them."""

    loglam: np.ndarray  # float64 log10 vacuum wavelength
    flux: np.ndarray  # float32
    ivar: np.ndarray  # float32
    andmask: np.ndarray  # int32, bad in every exposure
    ormask: np.ndarray  # int32, bad in at least one exposure
    sky: np.ndarray  # float32, the subtracted sky
    snr: dict[str, float]  # measured median S/N per pixel per band (u, g, r, i, z)

    @property
    def wavelength(self) -> np.ndarray:
        return 10.0**self.loglam


def _oh_lines() -> np.ndarray:
    """A fixed OH-like forest: (wavelength, strength) pairs redward of 6800 A."""
    rng = np.random.default_rng(20120101)
    centres = np.sort(rng.uniform(6800.0, 10400.0, 160))
    strengths = rng.lognormal(-2.2, 0.8, centres.size) * (1 + (centres - 6800) / 2000)
    return np.stack([centres, strengths], axis=1)


OH_LINES = _oh_lines()


@functools.cache
def _sky_table(model: SurveyModel) -> tuple[np.ndarray, np.ndarray]:
    """Sky-line spectrum on a fine log grid over the survey's range, computed once."""
    lo = model.loglam_start[0] - 0.01
    hi = model.loglam_start[1] + DLOGLAM * model.n_pix[1] + 0.01
    loglam = np.arange(lo, hi, DLOGLAM / 8)
    wave = 10.0**loglam
    lines = np.concatenate([np.array(SKY_LINES), OH_LINES, np.array(HG_LINES)])
    if not model.hg_lines:
        lines = lines[: len(SKY_LINES) + len(OH_LINES)]
    line_flux = np.zeros_like(wave)
    for centre, strength in lines:
        sigma = centre / model.resolution / 2.3548
        near = np.abs(wave - centre) < 6 * sigma
        line_flux[near] += 12.0 * strength * np.exp(-0.5 * ((wave[near] - centre) / sigma) ** 2)
    return loglam, line_flux


def sky_model(wave: np.ndarray, model: SurveyModel) -> tuple[np.ndarray, np.ndarray]:
    """Sky continuum and sky-line spectrum (relative units, continuum ~1 at 5500 A)."""
    continuum = 0.6 + 0.8 * (wave / 5500.0) ** 1.5
    loglam, line_flux = _sky_table(model)
    return continuum, np.interp(np.log10(wave), loglam, line_flux)


def sample_pixels(rest: RestFrameSpectrum, loglam_obs: np.ndarray, z: float) -> np.ndarray:
    """Mean rest-frame flux over each observed pixel (flux-conserving box average).

    A redshift is a shift of log10(1 + z) in log wavelength; pixels beyond the
    source's coverage take the mean of its last 200 fine pixels at that end.
    """
    shift = np.log10(1.0 + z)
    edges = np.concatenate([loglam_obs - DLOGLAM / 2, [loglam_obs[-1] + DLOGLAM / 2]]) - shift
    position = (edges - rest.loglam0) / rest.dloglam + 0.5  # in source pixels
    cumulative = np.concatenate([[0.0], np.cumsum(rest.flux)])
    inside = np.interp(position, np.arange(cumulative.size), cumulative)
    flux = np.diff(inside) / np.maximum(np.diff(position), 1e-12)
    n = rest.flux.size
    low = position[1:] <= 0
    high = position[:-1] >= n
    if low.any():
        flux[low] = rest.flux[:200].mean()
    if high.any():
        flux[high] = rest.flux[-200:].mean()
    return flux / (1.0 + z)  # f_lambda dims by (1 + z) from stretching


def sample_linear(rest: RestFrameSpectrum, edges: np.ndarray, z: float) -> np.ndarray:
    """Mean observed-frame flux density between consecutive linear-wavelength ``edges``.

    The flux-conserving box average of ``sample_pixels`` for linear pixels (the 2D
    stripes' columns, the bandpass integration grid): ``len(edges) - 1`` values.
    """
    position = (np.log10(np.asarray(edges) / (1.0 + z)) - rest.loglam0) / rest.dloglam + 0.5
    cumulative = np.concatenate([[0.0], np.cumsum(rest.flux)])
    inside = np.interp(position, np.arange(cumulative.size), cumulative)
    flux = np.diff(inside) / np.maximum(np.diff(position), 1e-12)
    n = rest.flux.size
    flux[position[1:] <= 0] = rest.flux[:200].mean()
    flux[position[:-1] >= n] = rest.flux[-200:].mean()
    return flux / (1.0 + z)


REALISM = ("survey", "survey-full", "clean")


def throughput(wave: np.ndarray) -> np.ndarray:
    """Relative system throughput: 1 near 6300 A, ~0.25 at 3800 A and 8800 A."""
    return 0.05 + 0.95 * np.exp(-0.5 * ((wave - 6300.0) / 1400.0) ** 2)


def ccm_extinction(wave: np.ndarray, ebv: float, r_v: float = 3.1) -> np.ndarray:
    """Transmission 10 ** (-0.4 A(lambda)) of dust with E(B-V) = ``ebv`` (Cardelli,
    Clayton & Mathis 1989: the optical polynomial for 1.1-3.3 / um, the infrared
    power law below)."""
    x = 1e4 / np.asarray(wave, dtype=np.float64)  # inverse microns
    y = x - 1.82
    a = np.where(
        x >= 1.1,
        1 + 0.17699 * y - 0.50447 * y**2 - 0.02427 * y**3 + 0.72085 * y**4
        + 0.01979 * y**5 - 0.77530 * y**6 + 0.32999 * y**7,
        0.574 * x**1.61,
    )  # fmt: skip
    b = np.where(
        x >= 1.1,
        1.41338 * y + 2.28305 * y**2 + 1.07233 * y**3 - 5.38434 * y**4
        - 0.62251 * y**5 + 5.30260 * y**6 - 2.09002 * y**7,
        -0.527 * x**1.61,
    )  # fmt: skip
    a_lambda = ebv * r_v * (a + b / r_v)
    return 10.0 ** (-0.4 * a_lambda)


#: Mean E(B-V) (exponential draws, capped at 1) of Galactic dust in front of stars
#: (LAMOST and SEGUE reach low latitudes) and of extragalactic targets (high latitude).
EBV_SCALE = {"star": 0.15, "extragalactic": 0.03}


def _correlated(rng: np.random.Generator, n: int, width: float = 1.5) -> np.ndarray:
    half = int(4 * width)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    noise = np.convolve(rng.standard_normal(n), kernel / np.sqrt(np.sum(kernel**2)), "same")
    return noise


def observe(
    rest: RestFrameSpectrum,
    model: SurveyModel,
    z: float,
    snr_r: float,
    flux_scale: float,
    rng: np.random.Generator,
    realism: str = "clean",
) -> ObservedSpectrum:
    """Simulate one observed spectrum.

    Parameters
    ----------
    rest : RestFrameSpectrum
        Source spectrum, already broadened to ``model.resolution``.
    model : SurveyModel
        Survey configuration.
    z : float
        Redshift (stars: v / c).
    snr_r : float
        Target median S/N per pixel over the r band (5500-6900 A).
    flux_scale : float
        Median object flux in the output units.
    rng : numpy.random.Generator
        Source of every random choice (file length, calibration, noise, masks).
    realism : {"clean", "survey", "survey-full"}
        "survey" adds throughput, per-line sky residuals, spikes and LAMOST tilts;
        "survey-full" also dust, LAMOST arm steps and lost regions.
    """
    if realism not in REALISM:
        raise ValueError(f"realism must be one of {REALISM}, not {realism!r}")
    survey_like = realism in ("survey", "survey-full")
    full = realism == "survey-full"
    start = rng.uniform(*model.loglam_start)
    n_pix = int(rng.integers(model.n_pix[0], model.n_pix[1] + 1))
    loglam = start + DLOGLAM * np.arange(n_pix)
    wave = 10.0**loglam

    signal = sample_pixels(rest, loglam, z)
    signal *= flux_scale / np.median(signal)
    x = np.linspace(-1.0, 1.0, n_pix)
    calibration = 1.0 + model.calibration_error * (
        rng.normal() * x + 0.5 * rng.normal() * (x**2 - 1 / 3)
    )
    if full:  # Galactic dust: reddening that mimics a cooler continuum
        scale = EBV_SCALE["extragalactic" if rest.kind in ("GALAXY", "QSO") else "star"]
        signal = signal * ccm_extinction(wave, min(rng.exponential(scale), 1.0))
        signal *= flux_scale / np.median(signal)
    if survey_like and model.survey == "lamost":
        calibration = calibration * (wave / 6000.0) ** rng.normal(0.0, 0.3)
    if full and model.arm_join is not None:  # each arm calibrated on its own
        calibration = np.where(
            wave < sum(model.arm_join) / 2, calibration * rng.normal(1.0, 0.08), calibration
        )
    signal = np.maximum(signal * calibration, 0.0)

    sky_continuum, sky_lines = sky_model(wave, model)
    # Faint (low S/N) objects sit on a relatively brighter sky.
    sky_level = flux_scale * float(np.clip(rng.uniform(0.3, 1.5) * 15.0 / snr_r, 0.02, 5.0))
    sky = sky_level * (sky_continuum + sky_lines)
    variance_shape = signal + sky + 0.02 * sky_level
    if model.arm_join is not None:
        join = (wave > model.arm_join[0]) & (wave < model.arm_join[1])
        variance_shape[join] *= 2.5
    if survey_like:
        variance_shape = variance_shape / throughput(wave)
    r_band = (wave > SNR_BANDS["r"][0]) & (wave < SNR_BANDS["r"][1])
    scale = np.median(signal[r_band] / np.sqrt(variance_shape[r_band])) / snr_r
    sigma = scale * np.sqrt(variance_shape)

    residual = sky_level * sky_lines * 0.02 * rng.standard_normal()
    if survey_like:
        amplitude = rng.uniform(0.01, 0.08)
        residual = residual + sky_level * sky_lines * amplitude * _correlated(rng, n_pix)
    flux = signal + sigma * rng.standard_normal(n_pix) + residual
    if survey_like:
        for _ in range(int(rng.poisson(1.5))):  # unmasked cosmic-ray / hot-pixel residue
            at = int(rng.integers(n_pix))
            flux[at] += sigma[at] * rng.uniform(5.0, 40.0)
    ivar = 1.0 / (sigma * rng.uniform(0.95, 1.05)) ** 2  # pipelines misjudge noise a little

    andmask = np.zeros(n_pix, np.int32)
    ormask = np.zeros(n_pix, np.int32)
    bright = sky_lines * sky_level > 4.0 * sky_level * sky_continuum
    ormask[bright] |= BRIGHTSKY
    if rng.random() < 0.3:
        andmask[bright] |= BRIGHTSKY
    if model.arm_join is not None:
        ormask[join] |= BADARM
    for _ in range(int(rng.poisson(0.4))):  # dead columns: zero flux and ivar
        first = int(rng.integers(0, n_pix - 12))
        run = slice(first, first + int(rng.integers(1, 12)))
        andmask[run] |= NODATA
        ormask[run] |= NODATA
        flux[run] = 0.0
        ivar[run] = 0.0
    if full:
        _lost_regions(wave, model, flux, ivar, andmask, ormask, rng)
    ivar[andmask != 0] = 0.0
    snr = measure_snr(wave, flux, ivar)
    return ObservedSpectrum(
        loglam,
        flux.astype(np.float32),
        ivar.astype(np.float32),
        andmask,
        ormask,
        sky.astype(np.float32),
        snr,
    )


def _lost_regions(wave, model, flux, ivar, andmask, ormask, rng) -> None:
    """Whole regions real files lose: the arm join (30 % of files with one) and the
    blue end (20 %, up to 400 A), written as zero flux and ivar with NODATA set."""
    lost = np.zeros(wave.size, dtype=bool)
    if model.arm_join is not None and rng.random() < 0.3:
        lost |= (wave > model.arm_join[0]) & (wave < model.arm_join[1])
    if rng.random() < 0.2:
        lost |= wave < wave[0] + rng.uniform(50.0, 400.0)
    andmask[lost] |= NODATA
    ormask[lost] |= NODATA
    flux[lost] = 0.0
    ivar[lost] = 0.0


def measure_snr(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> dict[str, float]:
    """Median flux * sqrt(ivar) over good pixels of each band, as pipelines report it."""
    good = ivar > 0
    out: dict[str, float] = {}
    for band, (lo, hi) in SNR_BANDS.items():
        sel = good & (wave >= lo) & (wave < hi)
        out[band] = float(np.median(flux[sel] * np.sqrt(ivar[sel]))) if sel.sum() > 20 else -9999.0
    return out
