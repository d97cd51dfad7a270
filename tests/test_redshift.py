"""Template-fitting redshifts (raysurvey.redshift): exactness, errors, flags, real data."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from astropy.io import fits

from raysurvey.redshift import RedshiftFitter, TemplatesNotFoundError, load_templates
from raysurvey.redshift.chi2 import ShiftChi2, chi2_direct, chi2_window
from raysurvey.redshift.clean import running_median, sorting_network, spike_mask
from raysurvey.redshift.evaluate import redshift_metrics
from raysurvey.spectra.grid import grid_wavelength

C_KMS = 299792.458


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread, as the fitter uses: many tiny systems crawl with more on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fitter(templates_dir) -> RedshiftFitter:
    return RedshiftFitter(templates_dir)


def _native(templates_dir: str, filename: str):
    """(rest wavelength, basis, archetype coefficients or None) straight from the file."""
    with fits.open(os.path.join(templates_dir, filename)) as hdul:
        basis = np.asarray(hdul[0].data, np.float64)
        header = hdul[0].header
        coeff = np.asarray(hdul["ARCHETYPE_COEFF"].data) if "ARCHETYPE_COEFF" in hdul else None
    basis = np.atleast_2d(basis)
    pix = float(header["CRVAL1"]) + float(header["CDELT1"]) * np.arange(basis.shape[1])
    return (10**pix if header.get("LOGLAM") else pix), basis, coeff


def _observe(wave_rest, spectrum, z, snr, rng, n=1, n_pix=3700):
    """The rest-frame spectrum at redshift z on the common grid, with Gaussian noise."""
    wave = grid_wavelength(n_pix)
    flux = np.interp(wave / (1 + z), wave_rest, spectrum)
    sigma = np.full(n_pix, np.median(np.abs(flux)) / snr)
    noisy = flux + sigma * rng.standard_normal((n, n_pix))
    return noisy, np.broadcast_to(1 / sigma**2, noisy.shape).copy()


@pytest.fixture(scope="module")
def galaxy(templates_dir):
    wave, basis, coeff = _native(templates_dir, "rrtemplate-galaxy.fits")
    return wave, coeff[7] @ basis


@pytest.fixture(scope="module")
def qso(templates_dir):
    wave, basis, _ = _native(templates_dir, "rrtemplate-qso.fits")
    return wave, basis[0] + 0.2 * basis[1] - 0.1 * basis[2]


def test_missing_template_dir_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(TemplatesNotFoundError, match="does not exist"):
        RedshiftFitter(tmp_path / "nowhere")
    monkeypatch.delenv("RAYSURVEY_TEMPLATES", raising=False)
    with pytest.raises(TemplatesNotFoundError, match="RAYSURVEY_TEMPLATES"):
        RedshiftFitter(None)
    with pytest.raises(TemplatesNotFoundError, match="rrtemplate-galaxy.fits"):
        load_templates(tmp_path, classes=("GALAXY",))  # exists, but holds no files


@pytest.mark.parametrize("cls,index", [("GALAXY", 0), ("STAR", 3)])  # FFT and matmul modes
def test_batched_chi2_equals_explicit_least_squares(templates_dir, cls, index):
    tset = load_templates(templates_dir, classes=(cls,))[cls][index]
    rng = np.random.default_rng(3)
    n = 3700
    flux = 1.0 + rng.standard_normal(n)
    ivar = rng.uniform(0.5, 2.0, n)
    ivar[200:260] = 0.0
    shifts = np.array([tset.s_min, (tset.s_min + tset.s_max) // 2, tset.s_max])
    expected = chi2_direct(flux, ivar, tset, shifts)
    f, w = torch.tensor(flux)[None], torch.tensor(ivar)[None]
    got = ShiftChi2(f, w, tset).chi2(torch.tensor(shifts - tset.s_min)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    window, at = chi2_window(f, w, tset, torch.tensor([shifts[1] - 1]), 3)
    np.testing.assert_allclose(window[0, 1].item(), expected[1], rtol=1e-8)
    assert at[0].tolist() == [shifts[1] - 1, shifts[1], shifts[1] + 1]


@pytest.mark.parametrize("cls,z", [("GALAXY", 0.4321), ("GALAXY", 0.0153), ("QSO", 2.3456)])
def test_recovers_known_redshift(fitter, galaxy, qso, cls, z):
    wave, spectrum = galaxy if cls == "GALAXY" else qso
    flux, ivar = _observe(wave, spectrum, z, snr=10.0, rng=np.random.default_rng(5))
    out = fitter.fit(flux, ivar, [cls])
    assert abs(out["z"][0] - z) / (1 + z) * C_KMS < 30.0  # km/s; a pixel is 69 km/s
    assert not out["unreliable"][0]
    assert out["spectype"][0] == cls


def test_batch_equals_single(fitter, galaxy, qso):
    rng = np.random.default_rng(7)
    f1, i1 = _observe(*galaxy, 0.2, 8.0, rng)
    f2, i2 = _observe(*qso, 1.7, 8.0, rng)
    f3, i3 = _observe(*galaxy, 0.8, 3.0, rng)
    flux, ivar = np.concatenate([f1, f2, f3]), np.concatenate([i1, i2, i3])
    classes = ["GALAXY", "QSO", None]
    batch = fitter.fit(flux, ivar, classes)
    for k in range(3):
        one = fitter.fit(flux[k : k + 1], ivar[k : k + 1], [classes[k]])
        for key in ("z", "z_err", "chi2", "delta_chi2"):
            np.testing.assert_allclose(one[key][0], batch[key][k], rtol=1e-9)
        assert one["unreliable"][0] == batch["unreliable"][k]


def test_error_covers_the_truth_in_a_noise_ensemble(fitter, galaxy):
    z = 0.3
    flux, ivar = _observe(*galaxy, z, snr=4.0, rng=np.random.default_rng(11), n=40)
    out = fitter.fit(flux, ivar, "GALAXY")
    assert np.all(out["z_err"] > 0)
    pull = (out["z"] - z) / out["z_err"]
    assert np.mean(np.abs(pull) < 1) >= 0.5  # 68 % expected
    assert np.mean(np.abs(pull) < 3) >= 0.9
    # the error is of the size of the scatter (neither 10x too large nor too small)
    ratio = np.std(out["z"] - z) / np.median(out["z_err"])
    assert 0.4 < ratio < 2.5


def test_pure_noise_is_flagged_unreliable(fitter):
    rng = np.random.default_rng(13)
    flux = rng.standard_normal((12, 3700))
    out = fitter.fit(flux, np.ones_like(flux), ["GALAXY"] * 6 + ["QSO"] * 6)
    assert out["unreliable"].mean() >= 0.8
    empty = fitter.fit(np.full((2, 3700), np.nan), np.zeros((2, 3700)), ["QSO", "STAR"])
    assert np.isnan(empty["z"]).all() and empty["unreliable"].all()


def test_star_velocity_and_unknown_class(fitter, templates_dir):
    wave, basis, coeff = _native(templates_dir, "rrtemplate-star-K.fits")
    v = 120.0
    flux, ivar = _observe(wave, coeff[40] @ basis, v / C_KMS, 20.0, np.random.default_rng(17))
    for given in ("STAR", None):
        out = fitter.fit(flux, ivar, [given])
        assert out["spectype"][0] == "STAR"
        assert abs(out["z"][0] * C_KMS - v) < 15.0


def test_spike_is_masked_but_emission_line_kept():
    n = 200
    x = np.arange(n)
    line = 30.0 * np.exp(-0.5 * ((x - 60) / 1.0) ** 2)  # R ~ 2000 emission line
    flux = 1.0 + line
    flux[140] += 40.0  # one-pixel cosmic ray
    ivar = np.full(n, 1.0)
    mask = spike_mask(torch.tensor(flux)[None], torch.tensor(ivar)[None])[0].numpy()
    assert mask[140]
    assert not mask[55:66].any()


def test_redshift_metrics_by_hand():
    m = redshift_metrics(
        [0.1, 1.0, 2.0, 0.5],
        [0.1001, 1.05, 2.0, np.nan],
        ["GALAXY", "QSO", "QSO", "GALAXY"],
        [False, True, False, True],
    )
    assert m["n"] == 4
    assert m["frac_within"] == pytest.approx(0.5)  # 0.1 and 2.0
    assert m["catastrophic_1000"] == pytest.approx(0.5)  # 1.05 (7495 km/s) and the NaN
    assert m["n_catastrophic"] == 2
    assert m["flagged_catastrophic"] == pytest.approx(1.0)
    assert m["flagged_good"] == pytest.approx(0.0)


REAL = (
    "sdss/spec-0295-51585-0596.fits",  # galaxy z 0.138
    "sdss/NGC3522_SDSS_DR18.fits",  # galaxy z 0.004
    "sdss/spec-1468-52999-0582.fits",  # QSO z 2.209
    "sdss/spec-9403-58018-0485.fits",  # QSO z 0.480
    "sdss/spec-4296-55499-0616.fits",  # QSO z 1.436
)


def test_real_sdss_agree_with_the_pipeline(templates_dir, realdata_dir, tmp_path):
    real = realdata_dir
    with open(real / "MANIFEST.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["path"] in REAL]
    assert len(rows) == len(REAL)
    manifest = tmp_path / "MANIFEST.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(r | {"path": str(real / r["path"])})
    from raysurvey.redshift.evaluate import evaluate_redshift

    out = tmp_path / "report"
    evaluate_redshift(str(manifest), str(out), templates_dir=templates_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_evaluated"] == len(REAL)
    assert metrics["per_class"]["GALAXY+QSO"]["frac_within"] == 1.0
    assert (out / "z_pred_vs_z.png").stat().st_size > 1000
    with open(out / "predictions.csv", newline="") as f:
        for r in csv.DictReader(f):
            z, zp = float(r["z_ref"]), float(r["z_pred"])
            assert abs(zp - z) / (1 + z) < 0.003, r
            assert r["unreliable"] == "0"


def test_chi2_class_holds_each_fitted_class(fitter, galaxy):
    flux, ivar = _observe(*galaxy, 0.3, 8.0, np.random.default_rng(19), n=2)
    out = fitter.fit(flux, ivar, [None, "GALAXY"])
    per = out["chi2_class"]
    assert per.shape == (2, 3) and per.dtype == np.float64
    assert np.all(np.isfinite(per[0]))  # every class fitted
    assert per[0].min() == out["chi2"][0] and out["spectype"][0] == "GALAXY"
    assert per[0, 0] == per[0].min()
    assert per[1, 0] == out["chi2"][1] and np.isinf(per[1, 1:]).all()  # class given


@pytest.mark.parametrize("n", [5, 15])
def test_sorting_network_sorts_every_zero_one_input(n):
    # 0-1 principle: a comparator network that sorts all 2^n 0/1 inputs sorts any input
    v = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # (2^n, n)
    for a, b in sorting_network(n):
        v[:, a], v[:, b] = np.minimum(v[:, a], v[:, b]), np.maximum(v[:, a], v[:, b])
    assert np.all(np.diff(v, axis=1) >= 0)


def test_running_median_equals_nanmedian():
    rng = np.random.default_rng(23)
    flux = torch.tensor(rng.standard_normal((4, 300)))
    good = torch.tensor(rng.uniform(size=(4, 300)) > 0.3)
    good[0, :40] = False  # windows with no good pixel: NaN
    x = torch.nn.functional.pad(torch.where(good, flux, torch.nan), (7, 7), value=torch.nan)
    expected = x.unfold(-1, 15, 1).nanmedian(-1).values  # lower median for even counts
    got = running_median(flux, good)
    assert torch.isnan(got[0, :30]).all()
    assert torch.equal(torch.nan_to_num(got, 99.0), torch.nan_to_num(expected, 99.0))
