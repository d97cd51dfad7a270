"""SDSS-like g, r, i cutouts of each spectrum's object: 64 x 64 pixels at 0.396 arcsec.

MAC-Net's photometric branch reads SDSS ImageCutout g, r, i images of 64 x 64 pixels
centred on the spectrum's coordinates. Each synthetic spectrum gets one, from the same
rest-frame spectrum and redshift as its 1D file (randomness from a separate stream):

- fluxes: the redshifted spectrum integrated through g, r and i bandpasses (AB, the
  SDSS filters' FWHM ranges with soft edges), so colours come from the spectrum; the
  r magnitude follows the spectrum's S/N (r = 17.6 - 3 log10(S/N_r / 10) +- 0.3,
  clipped to 12-21.5; for galaxies this is the 3.3 arcsec fibre magnitude, and the
  total is brighter by the fibre's aperture correction);
- stars, white dwarfs and QSOs: point sources, Moffat PSF (beta 3), r-band seeing FWHM
  1.0-2.0 arcsec (g 7 % worse, i 4 % better);
- galaxies: exponential (80 % of star-forming, 30 % of the others) or de Vaucouleurs
  profiles, effective radius 1-6 arcsec shrinking with redshift, axis ratio 0.3-1
  (0.5-1 for de Vaucouleurs), random position angle, convolved with the PSF;
- a Poisson(1.5) number of faint field stars (r 19.5-23) away from the centre;
- sky: 21.9 / 20.9 / 20.3 mag arcsec^-2 (+- 0.15) in g / r / i, subtracted as in SDSS
  frame images (a residual pedestal of up to 0.5 % remains), its Poisson noise and the
  object's in electrons (1200 / 900 / 700 e- per nanomaggy).

Images are nanomaggies (m = 22.5 - 2.5 log10 f), rendered on a 2x oversampled grid
with 16 pixels of padding (so PSF wings do not wrap), convolved by FFT and summed to
pixels.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from raysurvey.synth.fitsbytes import Card, image_extension, primary_header_only, render_cards
from raysurvey.synth.observe import sample_linear
from raysurvey.synth.source import RestFrameSpectrum

BANDS = ("g", "r", "i")
PIXSCALE = 0.396  # arcsec per pixel
SIZE = 64
OVERSAMPLE = 2
PAD = 16
MOFFAT_BETA = 3.0
#: FWHM ranges (A) of the SDSS filters; the bandpasses have 60 A soft edges.
BANDPASS: dict[str, tuple[float, float]] = {
    "g": (3996.0, 5375.0),
    "r": (5474.0, 6856.0),
    "i": (6713.0, 8248.0),
}
SKY_MU: dict[str, float] = {"g": 21.9, "r": 20.9, "i": 20.3}
ELECTRONS_PER_NMGY: dict[str, float] = {"g": 1200.0, "r": 900.0, "i": 700.0}
SEEING_SCALE: dict[str, float] = {"g": 1.07, "r": 1.0, "i": 0.96}
FIBRE_RADIUS = 1.65  # arcsec: LAMOST's 3.3 arcsec fibres
SERSIC_B = {1: 1.678, 4: 7.669}
C_AA_S = 2.99792458e18  # speed of light, Angstrom per second
GZIP_LEVEL = 1  # noisy float32 pixels: higher levels barely shrink them


def bandpass(band: str, wave: np.ndarray) -> np.ndarray:
    """Relative transmission of an SDSS-like filter (soft-edged top hat)."""
    lo, hi = BANDPASS[band]
    return 1.0 / (1.0 + np.exp(-(wave - lo) / 60.0)) / (1.0 + np.exp((wave - hi) / 60.0))


def band_magnitudes(wave: np.ndarray, flux: np.ndarray) -> dict[str, float]:
    """AB magnitudes (up to one common zero point) of f_lambda sampled at ``wave``.

    <f_nu> = int f_lambda T lambda dlambda / int T c / lambda dlambda; pixels with a
    non-finite flux are left out. Differences between bands (colours) are exact.
    """
    wave = np.asarray(wave, np.float64)
    flux = np.asarray(flux, np.float64)
    good = np.isfinite(flux)
    wave, flux = wave[good], flux[good]
    out = {}
    for band in BANDS:
        t = bandpass(band, wave)
        num = np.trapezoid(flux * t * wave, wave)
        den = np.trapezoid(t * C_AA_S / wave, wave)
        out[band] = float(-2.5 * np.log10(max(num / den, 1e-300)))
    return out


def spectrum_magnitudes(rest: RestFrameSpectrum, z: float) -> dict[str, float]:
    """g, r, i AB magnitudes (common arbitrary zero point) of the redshifted spectrum."""
    edges = np.arange(3700.0, 8702.0, 2.0)
    flux = sample_linear(rest, edges, z)
    return band_magnitudes(0.5 * (edges[1:] + edges[:-1]), flux)


def _grid() -> tuple[int, np.ndarray]:
    n = (SIZE + 2 * PAD) * OVERSAMPLE
    sub = (np.arange(n) + 0.5) / OVERSAMPLE - 0.5 - PAD  # subpixel centres in pixel units
    return n, sub


def moffat_kernel(fwhm_arcsec: float, beta: float = MOFFAT_BETA) -> np.ndarray:
    """Moffat PSF on the padded subpixel grid, centred on subpixel (0, 0) with wrap, sum 1."""
    n, _ = _grid()
    alpha = fwhm_arcsec / PIXSCALE * OVERSAMPLE / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    d = np.minimum(np.arange(n), n - np.arange(n)).astype(np.float64)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    kernel = (1.0 + r2 / alpha**2) ** -beta
    return kernel / kernel.sum()


def psf_image(fwhm_arcsec: float, centre: tuple[float, float] = (31.5, 31.5)) -> np.ndarray:
    """A unit-flux point source as the cutouts render it: [SIZE, SIZE] (tests, docs)."""
    kernel_ft = np.fft.rfft2(moffat_kernel(fwhm_arcsec))
    return _to_pixels(np.fft.irfft2(kernel_ft * _delta_ft([centre], [1.0]), s=kernel_ft_shape()))


def kernel_ft_shape() -> tuple[int, int]:
    n, _ = _grid()
    return (n, n)


def _delta_ft(positions: list[tuple[float, float]], fluxes: list[float]) -> np.ndarray:
    """Fourier transform of point sources at pixel (x, y) positions on the subpixel grid."""
    n, _ = _grid()
    u = np.fft.fftfreq(n)[:, None]  # cycles per subpixel, y
    v = np.fft.rfftfreq(n)[None, :]  # x
    out = np.zeros((n, n // 2 + 1), np.complex128)
    for (x, y), flux in zip(positions, fluxes, strict=True):
        sx = (x + PAD + 0.5) * OVERSAMPLE - 0.5
        sy = (y + PAD + 0.5) * OVERSAMPLE - 0.5
        out += (flux * np.exp(-2j * np.pi * u * sy)) * np.exp(-2j * np.pi * v * sx)  # separable
    return out


def sersic_image(
    n_sersic: int,
    r_eff_arcsec: float,
    axis_ratio: float,
    pa_deg: float,
    centre: tuple[float, float],
) -> np.ndarray:
    """Unit-flux Sersic profile on the padded subpixel grid (not convolved)."""
    _, sub = _grid()
    x = sub[None, :] - centre[0]
    y = sub[:, None] - centre[1]
    angle = np.radians(pa_deg)
    major = x * np.cos(angle) + y * np.sin(angle)
    minor = -x * np.sin(angle) + y * np.cos(angle)
    r = np.sqrt(major**2 + (minor / axis_ratio) ** 2) * PIXSCALE / r_eff_arcsec
    image = np.exp(-SERSIC_B[n_sersic] * (np.maximum(r, 1e-3) ** (1.0 / n_sersic) - 1.0))
    return image / image.sum()


def _to_pixels(sub_image: np.ndarray) -> np.ndarray:
    """Sum OVERSAMPLE x OVERSAMPLE blocks and drop the padding: [SIZE, SIZE]."""
    n = sub_image.shape[0] // OVERSAMPLE
    pixels = sub_image.reshape(n, OVERSAMPLE, n, OVERSAMPLE).sum(axis=(1, 3))
    return pixels[PAD : PAD + SIZE, PAD : PAD + SIZE]


@dataclass(frozen=True)
class CutoutSet:
    """g, r, i images of one object and what a cutout service records with them."""

    images: np.ndarray  # float32 (3, SIZE, SIZE), nanomaggies, g r i
    seeing: dict[str, float]  # PSF FWHM, arcsec
    mags: dict[str, float]  # the target's total AB magnitude per band
    sky_level: dict[str, float]  # subtracted sky, nanomaggies per pixel
    sky_sigma: dict[str, float]  # sky noise per pixel, nanomaggies
    morph: str  # PSF | EXP | DEV
    r_eff: float | None  # arcsec (galaxies)
    axis_ratio: float | None
    pa: float | None  # degrees
    centre: tuple[float, float]  # 0-based pixel (x, y) of the target
    n_field: int


def simulate_cutout(
    rest: RestFrameSpectrum,
    z: float,
    snr_r: float,
    rng: np.random.Generator,
) -> CutoutSet:
    """g, r, i cutouts of one object; deterministic given ``rng``'s state.

    Parameters
    ----------
    rest : RestFrameSpectrum
        The source spectrum the 1D file was made from (``kind`` decides the morphology).
    z : float
        Its redshift.
    snr_r : float
        The spectrum's target S/N_r (sets the brightness).
    rng : numpy.random.Generator
        The cutouts' own stream (never the 1D spectrum's).
    """
    seeing_r = rng.uniform(1.0, 2.0)
    r_fibre = float(np.clip(17.6 - 3.0 * np.log10(snr_r / 10.0) + rng.normal(0, 0.3), 12.0, 21.5))
    centre = (31.5 + rng.uniform(-0.5, 0.5), 31.5 + rng.uniform(-0.5, 0.5))
    morph, r_eff, axis_ratio, pa = "PSF", None, None, None
    if rest.kind == "GALAXY":
        p_exp = 0.8 if rest.subclass == "STARFORMING" else 0.3
        morph = "EXP" if rng.random() < p_exp else "DEV"
        r_eff = float(np.clip(rng.uniform(1.5, 4.0) * (0.1 / max(z, 0.02)) ** 0.7, 1.0, 6.0))
        axis_ratio = float(rng.uniform(0.3, 1.0) if morph == "EXP" else rng.uniform(0.5, 1.0))
        pa = float(rng.uniform(0.0, 180.0))
    sky_mu = {b: SKY_MU[b] + rng.normal(0.0, 0.15) for b in BANDS}
    pedestal = {b: rng.uniform(-0.005, 0.005) for b in BANDS}
    n_field = int(rng.poisson(1.5))
    field_pos, field_mag = [], []
    for _ in range(n_field):
        while True:
            x, y = rng.uniform(0, SIZE - 1, 2)
            if np.hypot(x - centre[0], y - centre[1]) > 12.0:
                break
        r_mag = rng.uniform(19.5, 23.0)
        g_r, r_i = rng.uniform(0.3, 1.5), rng.uniform(0.1, 0.6)
        field_pos.append((x, y))
        field_mag.append({"g": r_mag + g_r, "r": r_mag, "i": r_mag - r_i})

    colour = spectrum_magnitudes(rest, z)
    kernels = {b: np.fft.rfft2(moffat_kernel(seeing_r * SEEING_SCALE[b])) for b in BANDS}
    shape = kernel_ft_shape()
    galaxy_ft = None
    total_r = r_fibre
    if morph != "PSF":
        galaxy_ft = np.fft.rfft2(
            sersic_image(1 if morph == "EXP" else 4, r_eff, axis_ratio, pa, centre)
        )
        unit_r = _to_pixels(np.fft.irfft2(galaxy_ft * kernels["r"], s=shape))
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        in_fibre = np.hypot(xx - centre[0], yy - centre[1]) <= FIBRE_RADIUS / PIXSCALE
        total_r = r_fibre + 2.5 * np.log10(max(float(unit_r[in_fibre].sum()), 1e-3))
    mags = {b: total_r + colour[b] - colour["r"] for b in BANDS}

    images = np.empty((len(BANDS), SIZE, SIZE), np.float32)
    sky_level, sky_sigma = {}, {}
    for k, band in enumerate(BANDS):
        flux = 10.0 ** (-0.4 * (mags[band] - 22.5))
        fluxes = [10.0 ** (-0.4 * (m[band] - 22.5)) for m in field_mag]
        scene = _delta_ft(field_pos, fluxes)
        if galaxy_ft is None:
            scene += _delta_ft([centre], [flux])
        else:
            scene += flux * galaxy_ft
        model = _to_pixels(np.fft.irfft2(scene * kernels[band], s=shape))
        sky = 10.0 ** (-0.4 * (sky_mu[band] - 22.5)) * PIXSCALE**2
        electrons = ELECTRONS_PER_NMGY[band]
        sigma = np.sqrt((np.maximum(model, 0.0) + sky) / electrons)
        noise = rng.standard_normal((SIZE, SIZE)) * sigma
        images[k] = model + pedestal[band] * sky + noise
        sky_level[band] = float(sky)
        sky_sigma[band] = float(np.sqrt(sky / electrons))
    return CutoutSet(
        images=images,
        seeing={b: float(seeing_r * SEEING_SCALE[b]) for b in BANDS},
        mags={b: float(m) for b, m in mags.items()},
        sky_level=sky_level,
        sky_sigma=sky_sigma,
        morph=morph,
        r_eff=r_eff,
        axis_ratio=axis_ratio,
        pa=pa,
        centre=(float(centre[0]), float(centre[1])),
        n_field=n_field,
    )


def _band_cards(cutout: CutoutSet, band: str, ra: float, dec: float) -> list[Card]:
    scale = PIXSCALE / 3600.0
    return [
        ("EXTNAME", band.upper(), f"SDSS {band} band"),
        ("FILTER", band, "Filter"),
        ("BUNIT", "nanomaggy", "m = 22.5 - 2.5 log10(flux)"),
        ("PIXSCALE", PIXSCALE, "Pixel scale (arcsec)"),
        ("SEEING", round(cutout.seeing[band], 4), "PSF FWHM (arcsec)"),
        ("PSFMODEL", "MOFFAT", "PSF shape"),
        ("PSFBETA", MOFFAT_BETA, "Moffat beta"),
        ("SKYLEVEL", round(cutout.sky_level[band], 6), "Subtracted sky (nanomaggy/pixel)"),
        ("SKYSIG", round(cutout.sky_sigma[band], 6), "Sky noise per pixel (nanomaggy)"),
        ("MAG", round(cutout.mags[band], 4), "Target total AB magnitude (model)"),
        ("RADESYS", "ICRS", ""),
        ("EQUINOX", 2000.0, ""),
        ("CTYPE1", "RA---TAN", ""),
        ("CTYPE2", "DEC--TAN", ""),
        ("CRPIX1", SIZE / 2 + 0.5, "Image centre (1-based)"),
        ("CRPIX2", SIZE / 2 + 0.5, ""),
        ("CRVAL1", round(ra, 7), "RA at CRPIX (deg)"),
        ("CRVAL2", round(dec, 7), "Dec at CRPIX (deg)"),
        ("CD1_1", -scale, ""),
        ("CD1_2", 0.0, ""),
        ("CD2_1", 0.0, ""),
        ("CD2_2", scale, ""),
    ]


def write_cutout(
    cutout: CutoutSet, primary: list[Card], ra: float, dec: float, gzipped: bool
) -> bytes:
    """A cutout file: header-only primary, then G, R, I image extensions (docs/formats.md)."""
    cards = [
        *primary,
        ("BANDS", ",".join(BANDS), "Bands, in HDU order"),
        ("PIXSCALE", PIXSCALE, "Pixel scale (arcsec)"),
        ("MORPH", cutout.morph, "Profile: PSF, EXP, DEV (synthetic truth)"),
        ("RE_TRUE", round(cutout.r_eff, 4) if cutout.r_eff else 0.0, "Effective radius (arcsec)"),
        ("AB_TRUE", round(cutout.axis_ratio, 4) if cutout.axis_ratio else 1.0, "Axis ratio b/a"),
        ("PA_TRUE", round(cutout.pa, 3) if cutout.pa is not None else 0.0, "Position angle (deg)"),
        ("XCEN", round(cutout.centre[0], 4), "Target x, 0-based pixel (truth)"),
        ("YCEN", round(cutout.centre[1], 4), "Target y, 0-based pixel (truth)"),
        ("NFIELD", cutout.n_field, "Field stars added (truth)"),
    ]
    parts = [primary_header_only(render_cards(cards))]
    for k, band in enumerate(BANDS):
        parts.append(
            image_extension(render_cards(_band_cards(cutout, band, ra, dec)), cutout.images[k])
        )
    data = b"".join(parts)
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if gzipped else data
