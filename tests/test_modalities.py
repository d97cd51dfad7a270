"""Modalities: registry API, golden values on hand-made spectra, parity with matplotlib."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

from raysurvey import modalities
from raysurvey.modalities import compute, list_modalities
from raysurvey.modalities.map2d import SPECTROMER_RANGE, SURVEY_RANGES, colormap_lut
from raysurvey.spectra import grid_wavelength

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

N = 3700
RNG = np.random.default_rng(7)


def _spectra() -> np.ndarray:
    """Four spectra a plot should tell apart: smooth + noise, a line, flat, a ramp."""
    x = np.linspace(0.0, 1.0, N)
    wave = grid_wavelength(N)
    return np.stack(
        [
            10 + 5 * np.sin(20 * x) + RNG.normal(0, 0.5, N),
            50 * np.exp(-(((wave - 6563) / 20) ** 2)) + 10 + RNG.normal(0, 2, N),
            np.full(N, 3.0),
            100 * x + RNG.normal(0, 20, N),
        ]
    ).astype(np.float32)


def _savefig_rgb(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    buf.seek(0)
    return np.rint(plt.imread(buf)[..., :3] * 255).astype(np.uint8)


def reference_simple(flux: np.ndarray) -> np.ndarray:
    """The Spectromer Simple plot drawn by matplotlib (full-figure axes, no axis)."""
    fig = plt.figure(figsize=(2.24, 2.24), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.plot(grid_wavelength(flux.size), flux, linewidth=0.5)
    ax.axis("off")
    return _savefig_rgb(fig)


def reference_overlap(flux: np.ndarray) -> np.ndarray:
    fig = plt.figure(figsize=(2.24, 2.24), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    wave = grid_wavelength(flux.size)
    for part, w, colour in zip(
        np.array_split(flux, 3), np.array_split(wave, 3), ["red", "green", "blue"], strict=True
    ):
        ax.plot((w - w.min()) / (w.max() - w.min()), part, color=colour, linewidth=0.5, alpha=0.5)
    ax.axis("off")
    return _savefig_rgb(fig)


def reference_map2d(flux: np.ndarray) -> np.ndarray:
    """The authors' construction: zeros, 3x3 blocks row-major, imshow viridis, savefig."""
    image = np.zeros((224, 224))
    for index, value in enumerate(flux[: 74 * 74]):
        row, col = (index // 74) * 3, (index % 74) * 3
        image[row : row + 3, col : col + 3] = value
    fig = plt.figure(figsize=(2.24, 2.24))
    plt.imshow(image, cmap="viridis", vmin=SPECTROMER_RANGE[0], vmax=SPECTROMER_RANGE[1])
    plt.axis("off")
    plt.gca().set_position([0, 0, 1, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0)
    plt.close(fig)
    buf.seek(0)
    return np.rint(plt.imread(buf)[..., :3] * 255).astype(np.uint8)


# --- registry -------------------------------------------------------------------------


def test_registry_lists_every_convention_name_and_rejects_unknowns():
    names = list_modalities()
    for name in ("flux1d", "simple", "overlap", "map2d", "line512", "mel", "mfcc", "lfcc", "audio"):
        assert name in names
    with pytest.raises(KeyError, match="unknown modality 'nope'"):
        compute("nope", np.zeros((1, N), np.float32))
    with pytest.raises(ValueError, match="variants"):
        compute("map2d", np.zeros((1, N), np.float32), variant="rainbow")
    assert modalities.get_modality("map2d").default_variant == "per_survey"


@pytest.mark.parametrize("name", ["simple", "overlap", "map2d", "line512"])
def test_images_are_uint8_224_rgb_for_dict_and_array_batches(name):
    flux = _spectra()
    options = {"variant": "spectromer"} if name == "map2d" else {}
    from_array = compute(name, flux, **options)
    from_dict = compute(name, {"flux": flux, "survey": np.array(["sdss"] * 4)}, **options)
    assert from_array.dtype == np.uint8 and from_array.shape == (4, 224, 224, 3)
    np.testing.assert_array_equal(from_array, from_dict)
    one = compute(name, flux[1], **options)  # a single [N] spectrum is a batch of one
    np.testing.assert_array_equal(one[0], from_array[1])


# --- flux1d -------------------------------------------------------------------------


def test_flux1d_minmax_is_exactly_unit_range_and_nan_safe():
    flux = _spectra() * 1e3 - 50
    flux[0, 100:140] = np.nan
    out = compute("flux1d", flux)
    assert out.shape == (4, 3700) and out.dtype == np.float32
    assert np.isfinite(out).all()
    varying = [0, 1, 3]
    assert (out[varying].min(axis=1) == 0).all() and (out[varying].max(axis=1) == 1).all()
    np.testing.assert_array_equal(out[2], 0)  # a constant spectrum carries no shape
    # hand-computed: eq. 1 on a tiny case (first 3700 of a longer grid)
    tiny = np.tile(np.array([2.0, 4.0, 6.0, 10.0], np.float32), 1000)
    np.testing.assert_allclose(compute("flux1d", tiny)[0, :4], [0.0, 0.25, 0.5, 1.0])


def test_flux1d_zscore_and_median_and_short_input():
    flux = _spectra()
    z = compute("flux1d", flux, norm="zscore")
    np.testing.assert_allclose(z[[0, 1, 3]].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(z[[0, 1, 3]].std(axis=1), 1, atol=1e-4)
    spike = np.zeros((1, N), np.float32)
    spike[0, 5] = -1.0
    spike[0, 1000] = 1.0
    smooth = compute("flux1d", spike, median_filter=9)
    assert smooth[0, 1000] == pytest.approx(0.5)  # the spike is gone, the level stays
    with pytest.raises(ValueError, match="3700 grid pixels"):
        compute("flux1d", np.zeros((1, 100), np.float32))
    with pytest.raises(ValueError, match="minmax"):
        compute("flux1d", flux, norm="l2")


# --- map2d ----------------------------------------------------------------------------


def test_map2d_constant_flux_fills_exactly_50_of_74_block_rows():
    lut = colormap_lut()
    value = 72.0  # mid-range: index int((72 + 1.13) / 146.1 * 256) = 128
    image = compute("map2d", np.full((1, N), value, np.float32), variant="spectromer")[0]
    filled = lut[int((value - SPECTROMER_RANGE[0]) / np.ptp(SPECTROMER_RANGE) * 256)]
    zero = lut[int((0 - SPECTROMER_RANGE[0]) / np.ptp(SPECTROMER_RANGE) * 256)]
    assert (image[: 50 * 3, : 74 * 3] == filled).all()
    assert (image[50 * 3 :] == zero).all()  # 24 empty block rows + the 2 spare pixel rows
    assert (image[:, 74 * 3 :] == zero).all()  # the 2 spare pixel columns
    assert not (filled == zero).all()


def test_map2d_single_spike_lands_in_its_3x3_block():
    flux = np.zeros((1, N), np.float32)
    k = 1234  # block row 1234 // 74 = 16, column 1234 % 74 = 50
    flux[0, k] = 1000.0  # far above vmax: the top colour
    image = compute("map2d", flux, variant="spectromer")[0]
    lut = colormap_lut()
    top = (image == lut[255]).all(axis=-1)
    rows, cols = np.nonzero(top)
    assert set(rows) == {48, 49, 50} and set(cols) == {150, 151, 152}


def test_map2d_is_pixel_exact_with_the_matplotlib_imshow_construction():
    flux = RNG.uniform(-10, 160, size=(3, N)).astype(np.float32)
    ours = compute("map2d", flux, variant="spectromer")
    for row in range(3):
        np.testing.assert_array_equal(ours[row], reference_map2d(flux[row]))


def test_map2d_per_survey_ranges_and_normalised_variant():
    lamost_level = np.full((2, N), 800.0, np.float32)  # a typical LAMOST flux
    batch = {"flux": lamost_level, "survey": np.array(["lamost", "sdss"])}
    images = compute("map2d", batch)  # default: per_survey
    lut = colormap_lut()
    assert (images[1, 0, 0] == lut[255]).all()  # SDSS range: saturated
    lo, hi = SURVEY_RANGES["lamost"]
    assert (images[0, 0, 0] == lut[int((800 - lo) / (hi - lo) * 256)]).all()
    spectra = _spectra()
    sdss = compute("map2d", {"flux": spectra, "survey": np.array(["sdss"] * 4)})
    np.testing.assert_array_equal(sdss, compute("map2d", spectra, variant="spectromer"))
    with pytest.raises(ValueError, match="survey"):
        compute("map2d", _spectra())
    ramp = np.linspace(0, 1, N, dtype=np.float32)[None, :]
    norm = compute("map2d", ramp, variant="normalised")[0]
    assert norm[0, 0, 0] == 0 and norm[49 * 3, 73 * 3, 0] == 255  # R: min-max flux
    assert (norm[150:, :, :] == 0).all()  # unfilled blocks black


# --- line plots against matplotlib ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"), [("simple", reference_simple), ("overlap", reference_overlap)]
)
def test_line_plots_match_matplotlib_within_tolerance(name, reference):
    flux = _spectra()
    ours = compute(name, flux).astype(float)
    for row in range(flux.shape[0]):
        ref = reference(flux[row]).astype(float)
        diff = np.abs(ours[row] - ref)
        ink_ours, ink_ref = (255 - ours[row]).sum(), (255 - ref).sum()
        corr = np.corrcoef((255 - ours[row]).ravel(), (255 - ref).ravel())[0, 1]
        assert diff.mean() < 10, (name, row, diff.mean())
        assert 0.8 < ink_ours / ink_ref < 1.2, (name, row, ink_ours / ink_ref)
        assert corr > 0.95, (name, row, corr)


def test_overlap_uses_the_three_colours_and_simple_its_blue():
    flux = _spectra()[:1]
    simple = compute("simple", flux)[0].reshape(-1, 3)
    darkest = simple[np.argmin(simple.sum(axis=1))]
    np.testing.assert_allclose(darkest, [0x1F, 0x77, 0xB4], atol=3)
    overlap = compute("overlap", flux)[0].reshape(-1, 3).astype(int)
    reddish = (overlap[:, 0] > 200) & (overlap[:, 1] < 180) & (overlap[:, 2] < 180)
    greenish = (overlap[:, 1] > overlap[:, 0] + 40) & (overlap[:, 1] > overlap[:, 2] + 40)
    blueish = (overlap[:, 2] > 200) & (overlap[:, 0] < 180) & (overlap[:, 1] < 180)
    assert reddish.any() and greenish.any() and blueish.any()


def test_line512_is_grey_and_nan_safe():
    flux = _spectra()
    flux[1, 2000:2100] = np.nan
    image = compute("line512", flux)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert image.min() < 128 and np.median(image) == 255  # dark line, white paper
    flat = compute("line512", flux[2])[0, :, :, 0]
    dark_rows = np.nonzero(flat.min(axis=1) < 200)[0]
    assert set(dark_rows) <= {110, 111, 112, 113}  # a flat spectrum is a centred line
