"""LAMOST-like 2D spectrum stripes: what the fibre spectrograph's two CCDs record per fibre.

MAC-Net and DRC-Net read raw LAMOST 2D spectra: per fibre and arm a stripe of ~15 x
4000 pixels cut from the CCD frame (wavelength along the columns, the fibre's spatial
profile across the rows), of which they keep 11 x 2000 or 11 x 3000 windows. Each
synthetic spectrum gets a blue-arm and a red-arm stripe made from the same rest-frame
spectrum, redshift and S/N as its 1D file (randomness from a separate stream, so the
1D bytes do not change):

- wavelength: linear per arm, blue 3700-5900 A and red 5700-9000 A over ``columns``
  columns (0.55 and 0.825 A per column at 4000), with a per-fibre shift of the
  solution (CRVAL1 +-1.5 A, CDELT1 +-0.2 %);
- object: the redshifted spectrum averaged over each column, in photons (f_lambda x
  lambda x dlambda), through the atmosphere (telluric B, A and water bands) and a
  smooth throughput per arm that a dichroic at 5800 A splits;
- sky: the continuum and lines of ``observe.py``'s LAMOST sky (OH forest, [O I],
  Na D, Hg street lights) through the same fibre, so with the trace's own spatial
  profile; its level against the object follows the 1D model (faint objects sit on a
  relatively brighter sky);
- spatial profile: Gaussian, integrated over each pixel, FWHM 3.3-4.5 rows, centred
  on the middle row plus an offset of up to 0.6 rows, tilted by up to ~1 row across
  the stripe; a faint scattered-light background; with probability ``contamination``
  the wing of a neighbouring fibre (its own continuum plus sky) in the edge rows;
- noise: Poisson in electrons (Gaussian above 30 e-), read noise 2.5-4 e-, gain
  1.0-1.6 e-/ADU, cosmic-ray hits (Poisson mean 6 per arm, tracks of 1-4 pixels),
  16-bit saturation.

The electron scale is solved so that the median S/N per column of the sky-subtracted
box extraction (sum over all rows) in the red arm at 5900-6900 A equals the
spectrum's target S/N_r (``SNR_WINDOW``).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from raysurvey.synth.fitsbytes import Card, image_extension, primary_header_only, render_cards
from raysurvey.synth.observe import SURVEY_MODELS, sample_linear, sky_model
from raysurvey.synth.source import RestFrameSpectrum

N_ROWS = 15
N_COLUMNS = 4000
#: (arm, lo, hi): where the stripe S/N is pinned to the spectrum's S/N_r.
SNR_WINDOW = ("red", 5900.0, 6900.0)
SATURATION_ADU = 65535.0
COSMIC_RATE = 6.0
DICHROIC_A = 5800.0
EXPTIME_S = 1800.0
POISSON_LIMIT = 30.0
GZIP_LEVEL = 1  # noise-filled float32 barely compresses: level 6 saves < 1 % and costs 2x


@dataclass(frozen=True)
class ArmModel:
    """Wavelength range and smooth throughput of one spectrograph arm."""

    name: str
    wave_min: float
    wave_max: float
    peak: float
    centre: float
    width: float
    side: int  # -1: the dichroic cuts this arm's red end; +1: its blue end


ARMS: dict[str, ArmModel] = {
    "blue": ArmModel("blue", 3700.0, 5900.0, 0.35, 4800.0, 800.0, -1),
    "red": ArmModel("red", 5700.0, 9000.0, 0.40, 7000.0, 1300.0, +1),
}
#: Telluric absorption (lo, hi, depth): O2 B and A bands, two water bands.
TELLURIC_BANDS = (
    (6867.0, 6917.0, 0.35),
    (7594.0, 7700.0, 0.65),
    (7160.0, 7340.0, 0.12),
    (8130.0, 8340.0, 0.15),
)


def throughput(arm: str, wave: np.ndarray) -> np.ndarray:
    """Instrument throughput of ``arm`` (telescope, fibre, dichroic, grating, CCD QE)."""
    m = ARMS[arm]
    shape = m.peak * np.exp(-0.5 * ((wave - m.centre) / m.width) ** 2)
    return shape / (1.0 + np.exp(-m.side * (wave - DICHROIC_A) / 35.0))


def telluric(wave: np.ndarray) -> np.ndarray:
    """Atmospheric transmission: smooth troughs at the O2 and water bands."""
    out = np.ones_like(wave, dtype=np.float64)
    for lo, hi, depth in TELLURIC_BANDS:
        box = 1.0 / (1.0 + np.exp(-(wave - lo) / 8.0)) / (1.0 + np.exp((wave - hi) / 8.0))
        out *= 1.0 - depth * box
    return out


def response(arm: str, wave: np.ndarray) -> np.ndarray:
    """What an object's light goes through: atmosphere times instrument."""
    return telluric(wave) * throughput(arm, wave)


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), vectorised."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.sign(x) * (1.0 - poly * np.exp(-a * a))


def spatial_profile(centre: np.ndarray, sigma: float, rows: int) -> np.ndarray:
    """Gaussian profile integrated over each row: [rows, len(centre)], columns sum to <= 1."""
    edges = np.arange(rows + 1, dtype=np.float64)[:, None] - 0.5  # (rows + 1, 1)
    cdf = 0.5 * (1.0 + _erf((edges - centre[None, :]) / (np.sqrt(2.0) * sigma)))
    return np.diff(cdf, axis=0)  # (rows, C)


def planck_photons(wave: np.ndarray, teff: float) -> np.ndarray:
    """Planck B_lambda x lambda (photon rate shape, arbitrary scale)."""
    x = 1.4387769e8 / (wave * teff)
    return wave**-4 / np.expm1(np.minimum(x, 700.0))


@dataclass(frozen=True)
class StripeArm:
    """One arm's stripe and the numbers a pipeline records with it.

    ``image`` is ADU (bias-subtracted, not flat-fielded); ``sky`` the sky model a
    pipeline subtracts from the box extraction (sky through the fibre plus scattered
    light, summed over the rows, ADU); ``object_adu`` the noiseless object in that sum
    (truth, not written to files).
    """

    name: str
    image: np.ndarray  # float32 (rows, columns)
    crval1: float
    cdelt1: float
    sky: np.ndarray  # float32 (columns,)
    trace_row: float  # 0-based row of the trace centre at the middle column
    trace_slope: float  # rows per column
    fwhm: float  # rows
    gain: float  # e-/ADU
    rdnoise: float  # e-
    n_cosmics: int
    object_adu: np.ndarray  # float64 (columns,)

    @property
    def wave(self) -> np.ndarray:
        return self.crval1 + self.cdelt1 * np.arange(self.image.shape[1])


@dataclass(frozen=True)
class StripeSet:
    """The blue and red stripes of one fibre."""

    blue: StripeArm
    red: StripeArm
    contaminated: bool

    def arms(self) -> tuple[StripeArm, StripeArm]:
        return (self.blue, self.red)


def _counts(expected: np.ndarray, rdnoise: float, rng: np.random.Generator) -> np.ndarray:
    """Electrons read out: Poisson(expected) plus Gaussian read noise.

    Exact Poisson draws below ``POISSON_LIMIT`` electrons (edge rows, faint objects,
    the blue end of red stars), where counts are small and skewed; above it one normal
    draw of variance expected + rdnoise^2 (Poisson's skewness there is < 0.2, and the
    normal draw is several times cheaper per pixel).
    """
    out = expected + rng.standard_normal(expected.shape) * np.sqrt(expected + rdnoise**2)
    faint = expected < POISSON_LIMIT
    if faint.any():
        lam = expected[faint]
        out[faint] = rng.poisson(lam) + rng.normal(0.0, rdnoise, lam.shape)
    return out


def _cosmics(rng: np.random.Generator, rows: int, columns: int) -> tuple[np.ndarray, int]:
    hits = np.zeros((rows, columns))
    n = int(rng.poisson(COSMIC_RATE))
    for _ in range(n):
        r0, c0 = rng.uniform(0, rows), rng.uniform(0, columns)
        length = int(rng.integers(1, 5))
        angle = rng.uniform(0, 2 * np.pi)
        energy = float(rng.lognormal(np.log(1500.0), 0.7))  # electrons
        for k in range(length):
            r = int(r0 + k * np.sin(angle))
            c = int(c0 + k * np.cos(angle))
            if 0 <= r < rows and 0 <= c < columns:
                hits[r, c] += energy / length
    return hits, n


def simulate_stripes(
    rest: RestFrameSpectrum,
    z: float,
    snr_r: float,
    rng: np.random.Generator,
    contamination: float = 0.1,
    rows: int = N_ROWS,
    columns: int = N_COLUMNS,
) -> StripeSet:
    """Blue and red stripes of one object; deterministic given ``rng``'s state.

    Parameters
    ----------
    rest : RestFrameSpectrum
        The source spectrum the 1D file was made from.
    z : float
        Its redshift.
    snr_r : float
        Target S/N per column of the sky-subtracted box extraction in ``SNR_WINDOW``.
    rng : numpy.random.Generator
        The stripes' own stream (never the 1D spectrum's).
    contamination : float
        Probability that a neighbouring fibre's light reaches the edge rows.
    """
    # Every draw in a fixed order, before any array work.
    geometry = {}
    for name in ARMS:
        geometry[name] = {
            "shift": rng.uniform(-1.5, 1.5),
            "stretch": 1.0 + rng.uniform(-0.002, 0.002),
            "offset": rng.uniform(-0.6, 0.6),
            "slope": rng.normal(0.0, 1.2e-4),
            "fwhm": rng.uniform(3.3, 4.5),
            "gain": rng.uniform(1.0, 1.6),
            "rdnoise": rng.uniform(2.5, 4.0),
        }
    sky_ratio = float(np.clip(rng.uniform(0.3, 1.5) * 15.0 / snr_r, 0.02, 5.0))
    scatter = rng.uniform(0.001, 0.004)
    contaminated = bool(rng.random() < contamination)
    neighbour: dict[str, float] = {}
    if contaminated:
        neighbour = {
            "side": -1 if rng.random() < 0.5 else 1,
            "distance": rng.uniform(8.5, 10.5),
            "width": rng.uniform(0.9, 1.1),
            "teff": rng.uniform(3500.0, 9000.0),
            "brightness": rng.uniform(0.2, 1.0),
        }

    lamost = SURVEY_MODELS["lamost"]
    parts = {}
    for name, arm in ARMS.items():
        g = geometry[name]
        cdelt = (arm.wave_max - arm.wave_min) / columns * g["stretch"]
        crval = arm.wave_min + g["shift"]
        wave = crval + cdelt * np.arange(columns)
        edges = np.concatenate([wave - cdelt / 2, [wave[-1] + cdelt / 2]])
        parts[name] = {
            "wave": wave,
            "cdelt": cdelt,
            "crval": crval,
            "f": sample_linear(rest, edges, z),
        }
    norm = float(np.median(np.concatenate([p["f"] for p in parts.values()])))
    norm = norm if norm > 0 else 1.0
    for name, p in parts.items():
        wave, photons = p["wave"], p["wave"] * p["cdelt"]
        continuum, lines = sky_model(wave, lamost)
        p["o"] = np.maximum(p["f"] / norm, 0.0) * photons * response(name, wave)
        p["s"] = sky_ratio * (continuum + lines) * photons * throughput(name, wave)
        g = geometry[name]
        sigma = g["fwhm"] / 2.3548
        x = np.arange(columns) - (columns - 1) / 2
        g["trace"] = (rows - 1) / 2 + g["offset"]
        p["profile"] = spatial_profile(g["trace"] + g["slope"] * x, sigma, rows)
    level = scatter * float(np.median(parts["red"]["o"] + parts["red"]["s"]))
    red_median = float(np.median(parts["red"]["o"]))
    for name, p in parts.items():
        wave = p["wave"]
        p["b"] = level * (1.0 + 0.3 * np.linspace(-1.0, 1.0, columns))  # per pixel
        p["n"] = np.zeros((rows, columns))
        if contaminated:
            g, nb = geometry[name], neighbour
            centre = g["trace"] + nb["side"] * nb["distance"] + np.zeros(columns)
            shape = planck_photons(wave, nb["teff"]) * response(name, wave)
            ref = planck_photons(np.array([6400.0]), nb["teff"]) * response(
                "red", np.array([6400.0])
            )
            light = nb["brightness"] * red_median * shape / ref[0] + p["s"]
            sigma = g["fwhm"] * nb["width"] / 2.3548
            p["n"] = spatial_profile(centre, sigma, rows) * light[None, :]

    # Solve the electron scale A: median over the window of S/N_c(A) = snr_r, where
    # S/N_c = A o_c / sqrt(A q_c + R); per column the root is closed-form and the median
    # S/N crosses snr_r exactly at the median of the per-column roots.
    arm_name, lo, hi = SNR_WINDOW
    p = parts[arm_name]
    inside = p["profile"].sum(axis=0)
    o = inside * p["o"]
    q = inside * (p["o"] + p["s"]) + rows * p["b"] + p["n"].sum(axis=0)
    read = rows * geometry[arm_name]["rdnoise"] ** 2
    window = (p["wave"] >= lo) & (p["wave"] <= hi) & (o > 0)
    if not window.any():
        window = o > 0
    o_w, q_w, s2 = o[window], q[window], snr_r**2
    roots = (s2 * q_w + np.sqrt(s2 * s2 * q_w * q_w + 4.0 * o_w * o_w * s2 * read)) / (
        2 * o_w * o_w
    )
    scale = float(np.median(roots)) if roots.size else 1.0

    arms = {}
    for name, p in parts.items():
        g = geometry[name]
        expected = scale * (p["profile"] * (p["o"] + p["s"])[None, :] + p["b"][None, :] + p["n"])
        electrons = _counts(np.maximum(expected, 0.0), g["rdnoise"], rng)
        hits, n_hits = _cosmics(rng, rows, columns)
        image = np.minimum((electrons + hits) / g["gain"], SATURATION_ADU)
        inside = p["profile"].sum(axis=0)
        sky = scale * (inside * p["s"] + rows * p["b"]) / g["gain"]
        arms[name] = StripeArm(
            name=name,
            image=image.astype(np.float32),
            crval1=float(p["crval"]),
            cdelt1=float(p["cdelt"]),
            sky=sky.astype(np.float32),
            trace_row=float(g["trace"]),
            trace_slope=float(g["slope"]),
            fwhm=float(g["fwhm"]),
            gain=float(g["gain"]),
            rdnoise=float(g["rdnoise"]),
            n_cosmics=n_hits,
            object_adu=scale * inside * p["o"] / g["gain"],
        )
    return StripeSet(arms["blue"], arms["red"], contaminated)


def ivar_image(arm: StripeArm) -> np.ndarray:
    """Inverse variance (ADU^-2) of each pixel from its counts, GAIN and RDNOISE."""
    electrons = np.maximum(arm.image.astype(np.float64), 0.0) * arm.gain
    return (arm.gain**2 / (electrons + arm.rdnoise**2)).astype(np.float32)


def _wcs_cards(arm: StripeArm) -> list[Card]:
    return [
        ("CTYPE1", "WAVE", "Linear vacuum wavelength along axis 1"),
        ("CUNIT1", "Angstrom", "Wavelength unit"),
        ("CRPIX1", 1.0, "Reference pixel (1-based)"),
        ("CRVAL1", round(arm.crval1, 6), "Wavelength at the reference pixel"),
        ("CDELT1", round(arm.cdelt1, 9), "Wavelength step per column"),
    ]


def _arm_cards(arm: StripeArm) -> list[Card]:
    return [
        ("EXTNAME", arm.name.upper(), f"{arm.name} arm stripe"),
        ("ARM", arm.name, "Spectrograph arm"),
        ("BUNIT", "adu", "Bias-subtracted counts, not flat-fielded"),
        ("DISPAXIS", 1, "Dispersion along axis 1 (columns)"),
        *_wcs_cards(arm),
        ("TRACEROW", round(arm.trace_row, 4), "Trace centre, 0-based row, middle column"),
        ("TRACESLP", round(arm.trace_slope, 8), "Trace tilt (rows per column)"),
        ("TRACEFWH", round(arm.fwhm, 4), "Spatial FWHM of the trace (rows)"),
        ("GAIN", round(arm.gain, 4), "Gain (e-/ADU)"),
        ("RDNOISE", round(arm.rdnoise, 4), "Read noise (e-)"),
        ("SATURATE", SATURATION_ADU, "Saturation level (ADU)"),
        ("NCOSMIC", arm.n_cosmics, "Cosmic-ray hits added (synthetic truth)"),
    ]


def write_stripes(
    stripes: StripeSet, primary: list[Card], gzipped: bool, with_ivar: bool = False
) -> bytes:
    """A stripes file: header-only primary, then BLUE, RED (and BLUE_SKY, RED_SKY,
    optionally BLUE_IVAR, RED_IVAR) image extensions; layout in docs/formats.md."""
    cards = [
        *primary,
        ("NARMS", 2, "Arms in this file"),
        ("EXPTIME", EXPTIME_S, "Exposure time (s)"),
        ("CONTAM", stripes.contaminated, "Neighbouring fibre in the edge rows (truth)"),
    ]
    parts = [primary_header_only(render_cards(cards))]
    for arm in stripes.arms():
        parts.append(image_extension(render_cards(_arm_cards(arm)), arm.image))
    for arm in stripes.arms():
        sky_cards = [
            ("EXTNAME", f"{arm.name.upper()}_SKY", f"{arm.name} sky in the row sum"),
            ("BUNIT", "adu", "Sky + scattered light summed over all rows"),
            *_wcs_cards(arm),
        ]
        parts.append(image_extension(render_cards(sky_cards), arm.sky))
    if with_ivar:
        for arm in stripes.arms():
            ivar_cards = [
                ("EXTNAME", f"{arm.name.upper()}_IVAR", f"{arm.name} inverse variance"),
                ("BUNIT", "adu-2", "Inverse variance of each pixel"),
            ]
            parts.append(image_extension(render_cards(ivar_cards), ivar_image(arm)))
    data = b"".join(parts)
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if gzipped else data
