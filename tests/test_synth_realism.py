"""What ``realism="survey"`` adds to synthetic releases, and the training augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from raysurvey.synth.observe import SURVEY_MODELS, observe, throughput
from raysurvey.synth.source import RestFrameSpectrum
from raysurvey.synth.variety import (
    QSO_Z_PIECES,
    bal_troughs,
    galaxy_redshift,
    lya_transmission,
    qso_redshift,
    qso_variety,
)
from raysurvey.train.augment import CLIP, augment_flux1d


def _flat(n: int = 60_000, loglam0: float = 2.9, dloglam: float = 2e-5) -> RestFrameSpectrum:
    return RestFrameSpectrum(loglam0, dloglam, np.ones(n), "QSO", "BROADLINE")


def test_qso_redshifts_cover_the_pieces():
    rng = np.random.default_rng(0)
    z = np.array([qso_redshift(rng) for _ in range(4000)])
    assert z.min() >= QSO_Z_PIECES[0][0] and z.max() <= QSO_Z_PIECES[-1][1]
    for (low, high, weight), frac in zip(
        QSO_Z_PIECES,
        [np.mean((z >= lo) & (z < hi)) for lo, hi, _ in QSO_Z_PIECES],
        strict=True,
    ):
        assert frac == pytest.approx(weight, abs=0.03), (low, high)


def test_boss_galaxies_are_mostly_lrg_range():
    rng = np.random.default_rng(1)
    draws = [galaxy_redshift(rng, boss=True) for _ in range(2000)]
    lrg = np.array([is_lrg for _, is_lrg in draws])
    z = np.array([z for z, _ in draws])
    assert lrg.mean() == pytest.approx(0.6, abs=0.04)
    assert np.all((z[lrg] >= 0.25) & (z[lrg] <= 0.75))
    assert not any(flag for _, flag in (galaxy_redshift(rng, boss=False) for _ in range(100)))


def test_forest_only_blueward_of_lyman_alpha_and_mean_preserving():
    wave = 10 ** (2.9 + 2e-5 * np.arange(60_000))
    transmission = lya_transmission(wave, 3.0, np.random.default_rng(2))
    assert np.all(transmission[wave > 1216.0] == 1.0)
    forest = (wave > 1050.0) & (wave < 1200.0)
    assert transmission[forest].std() > 0.1  # absorption lines, not a smooth factor
    assert transmission[forest].mean() == pytest.approx(1.0, abs=0.15)


def test_bal_trough_sits_blueward_of_civ():
    wave = np.linspace(1200.0, 1700.0, 5000)
    trough = bal_troughs(wave, np.random.default_rng(3))
    assert trough.min() < 0.75 and wave[np.argmin(trough)] < 1549.0
    assert trough[wave > 1560.0].min() > 0.99


def test_qso_variety_adds_host_light_at_low_z():
    rng = np.random.default_rng(4)
    qso = _flat()
    host = RestFrameSpectrum(2.9, 2e-5, np.full(60_000, 2.0), "GALAXY", None)
    varied = [qso_variety(qso, 0.3, rng, host).flux.mean() for _ in range(50)]
    alone = [qso_variety(qso, 0.3, rng, None).flux.mean() for _ in range(50)]
    assert np.mean(varied) > np.mean(alone) * 1.3


def test_survey_realism_makes_the_blue_end_noisier():
    rest = RestFrameSpectrum(3.3, 2e-5, np.ones(60_000), "G", "G5")
    model = SURVEY_MODELS["sdss_legacy"]
    ratios = {}
    for realism in ("clean", "survey"):
        obs = observe(rest, model, 0.0, 20.0, 10.0, np.random.default_rng(5), realism)
        wave = obs.wavelength
        good = obs.ivar > 0
        sigma = 1 / np.sqrt(obs.ivar[good])
        blue = sigma[wave[good] < 4000].mean()
        red = sigma[(wave[good] > 6000) & (wave[good] < 6600)].mean()
        ratios[realism] = blue / red
    assert ratios["survey"] > 1.5 * ratios["clean"]
    assert throughput(np.array([6300.0]))[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="realism"):
        observe(rest, model, 0.0, 20.0, 10.0, np.random.default_rng(5), "dirty")


def test_augment_is_seeded_clipped_and_keeps_shape():
    x = np.tile(np.linspace(0.0, 1.0, 3700, dtype=np.float32), (16, 1))
    a = augment_flux1d(x, np.random.default_rng(6))
    b = augment_flux1d(x, np.random.default_rng(6))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= CLIP[0] and a.max() <= CLIP[1]
    assert not np.array_equal(a, x)  # something changed
    np.testing.assert_array_equal(x[0], np.linspace(0.0, 1.0, 3700, dtype=np.float32))
