"""The 2D modalities: ``stripes`` (MAC-Net / DRC-Net cuts) and ``photometry`` (Lupton
RGB of g, r, i cutouts), on hand-computed inputs."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.visualization import ManualInterval, make_lupton_rgb

from raysurvey.modalities import compute, get_modality, list_modalities
from raysurvey.modalities.stripes import WINDOWS, zscore_cuts

ROWS, COLS = 15, 4000


def stripe_batch(b: int = 2, trace=(7, 7), seed: int = 0) -> dict[str, np.ndarray]:
    """Stripes whose value encodes (row, column): row * 10_000 + column, plus a bright
    trace row so the trace finder has something to find."""
    rows = np.arange(ROWS)[:, None] * 10_000.0
    cols = np.arange(COLS)[None, :]
    base = (rows + cols).astype(np.float32)
    out = {}
    for key in ("stripe_blue", "stripe_red"):
        arms = np.repeat(base[None], b, axis=0)
        for i, t in enumerate(trace):
            arms[i, t] += 1e6  # the fibre's light
        out[key] = arms
    out["flux"] = np.zeros((b, 10), np.float32)
    return out


def test_registered_with_the_paper_windows():
    assert {"stripes", "photometry"} <= set(list_modalities())
    assert get_modality("stripes").variants == ("macnet", "drcnet")
    assert get_modality("stripes").default_variant == "macnet"
    assert WINDOWS["macnet"] == ((1000, 3000), (1500, 3500))
    assert WINDOWS["drcnet"] == ((500, 3500), (500, 3500))


@pytest.mark.parametrize("variant,width", [("macnet", 2000), ("drcnet", 3000)])
def test_stripes_cut_the_centre_rows_and_the_column_windows(variant, width):
    batch = stripe_batch(trace=(7, 9))
    out = compute("stripes", batch, variant=variant)
    assert out.shape == (2, 2, 11, width) and out.dtype == np.float32
    (b0, b1), (r0, r1) = WINDOWS[variant]
    for i, trace in enumerate((7, 9)):
        first = min(max(trace - 5, 0), ROWS - 11)
        for arm, key, (c0, c1) in ((0, "stripe_blue", (b0, b1)), (1, "stripe_red", (r0, r1))):
            raw = batch[key][i, first : first + 11, c0:c1].astype(np.float64)
            want = (raw - raw.mean()) / raw.std()
            np.testing.assert_allclose(out[i, arm], want, rtol=1e-5, atol=1e-5)
            assert abs(float(out[i, arm].mean())) < 1e-5
            assert float(out[i, arm].std()) == pytest.approx(1.0, abs=1e-5)
    # spectrum 1's trace at row 9 -> rows 4..14 (a symmetric cut around the trace)
    assert out[1, 0, 5].max() == out[1, 0].max()


def test_middle_centre_is_a_fixed_crop_and_edges_clip():
    batch = stripe_batch(trace=(0, 14))
    fixed = compute("stripes", batch, centre="middle")
    raw = batch["stripe_blue"][:, 2:13, 1000:3000]
    np.testing.assert_allclose(fixed[:, 0], zscore_cuts(raw), atol=1e-6)
    traced = compute("stripes", batch)
    np.testing.assert_allclose(
        traced[0, 0], zscore_cuts(batch["stripe_blue"][:1, 0:11, 1000:3000])[0]
    )
    np.testing.assert_allclose(
        traced[1, 1], zscore_cuts(batch["stripe_red"][1:, 4:15, 1500:3500])[0], atol=1e-6
    )


def test_custom_windows_nan_safety_and_errors():
    batch = stripe_batch()
    out = compute("stripes", batch, blue=(0, 100), red=(3900, 4000))
    assert out.shape == (2, 2, 11, 100)
    batch["stripe_blue"][0, :, 1200:1300] = np.nan
    batch["stripe_red"][1] = np.nan  # a stripe with no finite pixel
    out = compute("stripes", batch)
    assert np.isfinite(out).all()
    assert (out[0, 0, :, 200:300] == 0).all() and (out[1, 1] == 0).all()
    finite = out[0, 0][:, np.r_[0:200, 300:2000]]
    assert float(finite.std()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="equally wide"):
        compute("stripes", batch, blue=(0, 100), red=(0, 200))
    with pytest.raises(ValueError, match="does not fit stripes of 4000 columns"):
        compute("stripes", batch, blue=(3500, 4500), red=(0, 1000))
    with pytest.raises(ValueError, match="variants"):
        compute("stripes", batch, variant="nope")
    with pytest.raises(KeyError, match="stripe_red"):
        compute("stripes", {"flux": batch["flux"], "stripe_blue": batch["stripe_blue"]})
    with pytest.raises(ValueError, match="cannot cut 11 rows out of stripes with 8"):
        compute("stripes", {k: v[:, :8] if v.ndim == 3 else v for k, v in batch.items()})


# --- photometry -----------------------------------------------------------------------


def lupton_by_hand(g, r, i, vmax, stretch, q):
    """Lupton et al. (2004) as astropy implements it, written out: bands divided by the
    shared vmax, intensity I = mean of the three, each band scaled by
    asinh(Q I / stretch) * (0.1 / asinh(0.1 Q)) / I and clipped at 0, a pixel whose
    largest band exceeds 1 scaled back to 1, then 8 bits (truncated)."""
    rgb = np.stack([i, r, g]) / vmax
    intensity = rgb.mean(axis=0)
    f = np.arcsinh(q * intensity / stretch) * (0.1 / np.arcsinh(0.1 * q))
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.clip(np.where(intensity > 0, rgb * f / intensity, 0.0), 0, None)
    top = scaled.max(axis=0)
    scaled = np.where(top > 1, scaled / np.where(top > 1, top, 1), scaled)
    return (scaled * 255).astype(np.uint8).transpose(1, 2, 0)


def test_photometry_puts_i_r_g_in_r_g_b_and_scales_to_minus_one_one():
    g = np.array([[0.0, 1.0], [0.0, 4.0]])
    r = np.array([[0.0, 0.0], [2.0, 4.0]])
    i = np.array([[8.0, 0.0], [0.0, 4.0]])
    cutout = np.stack([g, r, i])[None].astype(np.float32)  # [1, 3 (g, r, i), 2, 2]
    out = compute("photometry", {"flux": np.zeros((1, 4), np.float32), "cutout_gri": cutout})
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.float32
    want8 = lupton_by_hand(g, r, i, vmax=8.0, stretch=0.1, q=8.0)
    got8 = np.rint((out[0].astype(np.float64) + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(got8, want8)
    np.testing.assert_allclose(out[0], want8 / 127.5 - 1, atol=1e-6)
    # by hand for the pure-g pixel (g = 1 of vmax 8): I = 1/24, f(I) = asinh(8 I / 0.1)
    # * 0.1 / asinh(0.8) = 0.26274, B = (1/8) * f(I) / I = 0.7882 -> 200 of 255
    assert got8[0, 1].tolist() == [0, 0, 200]
    assert got8[0, 0].tolist() == [255, 0, 0]  # the brightest pure-i pixel saturates R
    # values a person can check: a pure-i pixel is red only, pure g blue only, r green only
    assert out[0, 0, 0, 0] > -1 and (out[0, 0, 0, 1:] == -1).all()
    assert out[0, 0, 1, 2] > -1 and (out[0, 0, 1, :2] == -1).all()
    assert out[0, 1, 0, 1] > -1 and out[0, 1, 0, 0] == -1 and out[0, 1, 0, 2] == -1
    assert out[0, 1, 1, 0] == out[0, 1, 1, 1] == out[0, 1, 1, 2]  # grey: equal bands
    # the same as astropy's own function with i, r, g as R, G, B
    ref = make_lupton_rgb(i / 8, r / 8, g / 8, interval=ManualInterval(0, 1), stretch=0.1, Q=8)
    np.testing.assert_array_equal(got8, ref)
    assert out.min() >= -1 and out.max() <= 1


def test_photometry_keeps_colour_and_handles_bad_pixels():
    yy, xx = np.mgrid[:64, :64]
    psf = np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 8.0)
    blue_star = np.stack([3 * psf, 2 * psf, 1 * psf])  # brighter in g
    red_star = np.stack([0.1 * psf, 1 * psf, 3 * psf])  # brighter in i
    cutouts = np.stack([blue_star, red_star]).astype(np.float32)
    cutouts[1, 0, 0, 0] = np.nan
    out = compute("photometry", {"flux": np.zeros((2, 4), np.float32), "cutout_gri": cutouts})
    assert np.isfinite(out).all() and out.shape == (2, 64, 64, 3)
    centre = out[:, 32, 32]  # (R, G, B) at the star's centre
    assert centre[0, 2] > centre[0, 0]  # blue star: B > R
    assert centre[1, 0] > centre[1, 2]  # red star: R > B
    assert out[0, 0, 0].tolist() == [-1.0, -1.0, -1.0]  # sky far from the star: black
    blank = {"flux": np.zeros((1, 4), np.float32), "cutout_gri": np.zeros((1, 3, 8, 8))}
    empty = compute("photometry", blank)
    assert (empty == -1).all()
    with pytest.raises(ValueError, match=r"\[B, 3 \(g, r, i\), H, W\]"):
        compute("photometry", {"flux": np.zeros((1, 4)), "cutout_gri": np.zeros((1, 64, 64))})
