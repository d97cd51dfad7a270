"""What real survey populations vary that a template draw alone does not (``realism="survey"``).

Measured against ../shared/realdata (docs/real-data.md): models trained on template
draws called most real QSOs STAR or GALAXY, real luminous red galaxies STAR or QSO,
and low-z AGN GALAXY. The rest-frame changes here widen each population the way
real ones are wide; ``observe.py`` adds the instrument's share (throughput, sky
residuals, spikes).

- QSOs: redshift over 0.05-4.5 (``qso_redshift``); a power-law continuum tilt
  (lambda / 2500 A) ** beta, beta ~ N(0, 0.5), from reddening and intrinsic slope;
  host-galaxy light for z < 0.8 (an archetype galaxy, 0-150 % of the QSO's flux at
  5100 A rest); a stochastic Lyman-alpha forest blueward of 1216 A whose optical depth
  follows tau_eff(z) = 0.0018 (1 + z) ** 3.92 (Faucher-Giguere et al. 2008); broad
  absorption troughs blueward of C IV and Si IV in 10 % (BAL QSOs).
- Galaxies: in BOSS-like files most galaxies are luminous red galaxies at
  z 0.25-0.75; with ``realism="survey-full"`` 15 % of the others are nearby (z < 0.03)
  (``galaxy_redshift``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from raysurvey.synth.source import RestFrameSpectrum

LYA, LYB, LYMAN_LIMIT = 1215.67, 1025.72, 911.75
CIV, SIIV = 1549.06, 1396.76
C_KMS = 299_792.458
#: (low, high, weight) pieces of the QSO redshift distribution.
QSO_Z_PIECES = ((0.05, 0.8, 0.25), (0.8, 2.2, 0.45), (2.2, 4.5, 0.30))
BAL_FRACTION = 0.10
HOST_MAX_Z = 0.8


def qso_redshift(rng: np.random.Generator) -> float:
    """A QSO redshift: low-z AGN, the z ~ 1-2 bulk and the z > 2.2 forest QSOs."""
    weights = np.array([w for _, _, w in QSO_Z_PIECES])
    low, high, _ = QSO_Z_PIECES[int(rng.choice(len(QSO_Z_PIECES), p=weights / weights.sum()))]
    return float(rng.uniform(low, high))


def galaxy_redshift(
    rng: np.random.Generator, boss: bool, nearby: bool = False
) -> tuple[float, bool]:
    """(z, luminous red galaxy?): BOSS files are mostly LRGs at z 0.25-0.75; with
    ``nearby`` 15 % of the others are at z < 0.03 (``realism="survey-full"``)."""
    if boss and rng.random() < 0.6:
        return float(rng.uniform(0.25, 0.75)), True
    if nearby and rng.random() < 0.15:  # nearby galaxies (NGC objects in SDSS)
        return float(rng.uniform(0.002, 0.03)), False
    return float(min(0.02 + rng.gamma(2.5, 0.06), 0.8)), False


def _wave(rest: RestFrameSpectrum) -> np.ndarray:
    return 10.0 ** (rest.loglam0 + rest.dloglam * np.arange(rest.flux.size))


def _smooth_noise(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    """Unit-variance Gaussian noise correlated over ``width`` pixels."""
    noise = rng.standard_normal(n + 8 * int(width) + 1)
    half = max(1, int(4 * width))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / max(width, 1e-3)) ** 2)
    smooth = np.convolve(noise, kernel / np.sqrt(np.sum(kernel**2)), mode="same")
    return smooth[:n]


def lya_transmission(wave_rest: np.ndarray, z: float, rng: np.random.Generator) -> np.ndarray:
    """A stochastic forest: transmission exp(-tau) blueward of Ly-alpha at redshift ``z``.

    Each pixel's optical depth is tau_eff at the absorber's redshift times a lognormal
    field (correlated over ~0.5 A rest, unit mean), Ly-beta adds 16 % of its own
    forest below 1026 A, and below the Lyman limit a random Lyman-limit system leaves
    exp(-U(0, 3)). The mean of the templates (which already hold the mean forest of
    their QSOs) is kept on average by dividing by the mean transmission.
    """
    out = np.ones_like(wave_rest)
    forest = wave_rest < LYA
    if not forest.any():
        return out
    dlog = np.log10(wave_rest[1] / wave_rest[0])
    width = max(1.0, 0.5 / (wave_rest[0] * dlog * np.log(10)))  # ~0.5 A in pixels
    field = np.exp(1.0 * _smooth_noise(rng, wave_rest.size, width) - 0.5)
    z_abs = wave_rest * (1.0 + z) / LYA - 1.0
    tau = np.where(forest, 0.0018 * (1.0 + np.maximum(z_abs, 0.0)) ** 3.92 * field, 0.0)
    beta = wave_rest < LYB
    z_beta = wave_rest * (1.0 + z) / LYB - 1.0
    tau += np.where(beta, 0.16 * 0.0018 * (1.0 + np.maximum(z_beta, 0.0)) ** 3.92 * field, 0.0)
    transmission = np.exp(-tau)
    mean = np.exp(-0.0018 * (1.0 + np.maximum(z_abs, 0.0)) ** 3.92)
    out = np.where(forest, np.clip(transmission / np.maximum(mean, 0.05), 0.0, 1.5), 1.0)
    if rng.random() < 0.3:
        out = np.where(wave_rest < LYMAN_LIMIT, out * np.exp(-rng.uniform(0.0, 3.0)), out)
    return out


def bal_troughs(wave_rest: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Broad absorption troughs blueward of C IV and Si IV (one outflow, two ions)."""
    v_centre = rng.uniform(3000.0, 20000.0)
    v_width = rng.uniform(1500.0, 8000.0)
    depth = rng.uniform(0.3, 0.9)
    out = np.ones_like(wave_rest)
    for line, scale in ((CIV, 1.0), (SIIV, 0.7)):
        centre = line * (1.0 - v_centre / C_KMS)
        sigma = line * v_width / C_KMS / 2.3548
        out *= 1.0 - scale * depth * np.exp(-0.5 * ((wave_rest - centre) / sigma) ** 2)
    return out


def qso_variety(
    rest: RestFrameSpectrum, z: float, rng: np.random.Generator, host: RestFrameSpectrum | None
) -> RestFrameSpectrum:
    """A template QSO made as varied as real ones (see the module docstring)."""
    wave = _wave(rest)
    flux = rest.flux * (wave / 2500.0) ** rng.normal(0.0, 0.5)
    if host is not None and z < HOST_MAX_Z:
        host_wave = _wave(host)
        host_flux = np.interp(np.log10(wave), np.log10(host_wave), host.flux, left=0.0, right=0.0)
        at = np.abs(wave - 5100.0) < 50.0
        qso_level = np.median(flux[at]) if at.any() else np.median(flux)
        host_level = np.median(host_flux[at]) if at.any() else np.median(host_flux)
        if host_level > 0:
            flux = flux + rng.uniform(0.0, 1.5) * qso_level / host_level * host_flux
    if z > 1.6:
        flux = flux * lya_transmission(wave, z, rng)
    if z > 1.3 and rng.random() < BAL_FRACTION:
        flux = flux * bal_troughs(wave, rng)
    floor = 1e-3 * float(np.median(np.abs(flux)))
    return replace(rest, flux=np.maximum(flux, floor))
