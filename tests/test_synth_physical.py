"""The built-in physical spectrum model: coverage, determinism, truth labels, physics."""

from __future__ import annotations

import re

import numpy as np
import pytest

from raysurvey.synth.physical import (
    DLOGLAM,
    LOGG_RANGES,
    TEFF_RANGES,
    PhysicalSource,
    subclass_for,
)
from raysurvey.synth.source import KINDS, STAR_KINDS, RestFrameSpectrum, SpectrumSource

R = 1800.0


@pytest.fixture(scope="module")
def source() -> PhysicalSource:
    return PhysicalSource()


def draw(source: PhysicalSource, kind: str, seed: int, resolution: float = R) -> RestFrameSpectrum:
    return source.draw(kind, np.random.default_rng(seed), resolution)


def window(spec: RestFrameSpectrum, lo: float, hi: float) -> np.ndarray:
    lam = 10.0**spec.loglam
    return spec.flux[(lam >= lo) & (lam <= hi)]


def flux_at(spec: RestFrameSpectrum, lam0: float) -> float:
    return float(np.interp(np.log10(lam0), spec.loglam, spec.flux))


def linear_continuum(
    spec: RestFrameSpectrum, blue: tuple[float, float], red: tuple[float, float], lam0: float
) -> float:
    """Straight line through the mean flux of two side windows, evaluated at lam0."""
    x = [np.mean(blue), np.mean(red)]
    y = [window(spec, *blue).mean(), window(spec, *red).mean()]
    return float(np.interp(lam0, x, y))


def power_law_continuum(
    spec: RestFrameSpectrum, blue: tuple[float, float], red: tuple[float, float], lam: np.ndarray
) -> np.ndarray:
    """Power law through the mean flux of two windows, evaluated at lam."""
    lx = np.log([np.mean(blue), np.mean(red)])
    ly = np.log([window(spec, *blue).mean(), window(spec, *red).mean()])
    slope = (ly[1] - ly[0]) / (lx[1] - lx[0])
    return np.exp(ly[0] + slope * (np.log(lam) - lx[0]))


# ---------------------------------------------------------------- API and coverage


def test_protocol_and_kinds(source: PhysicalSource) -> None:
    typed: SpectrumSource = source  # structural: mypy/pyright check this line
    assert callable(typed.draw) and callable(typed.kinds)
    assert source.name == "physical"
    assert source.kinds() == KINDS
    with pytest.raises(ValueError):
        source.draw("Z", np.random.default_rng(0), R)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_finite_positive_covering_and_deterministic(
    source: PhysicalSource, kind: str
) -> None:
    spec = draw(source, kind, 7)
    again = draw(source, kind, 7)
    other = draw(source, kind, 8)
    assert spec.kind == kind
    assert spec.flux.dtype == np.float64 and spec.flux.ndim == 1
    assert np.all(np.isfinite(spec.flux)) and np.all(spec.flux > 0)
    assert spec.dloglam == DLOGLAM
    lam = 10.0**spec.loglam
    lam_min = 2000.0 if kind in STAR_KINDS else 900.0
    assert lam[0] <= lam_min and lam[-1] >= 11000.0
    assert np.allclose(np.diff(spec.loglam), DLOGLAM)
    assert np.median(window(spec, 4000.0, 8000.0)) == pytest.approx(1.0, rel=1e-6)
    # Same generator state, same spectrum; a different one differs.
    assert np.array_equal(spec.flux, again.flux)
    assert (spec.subclass, spec.teff, spec.logg, spec.feh) == (
        again.subclass,
        again.teff,
        again.logg,
        again.feh,
    )
    assert not np.array_equal(spec.flux, other.flux)


def test_grids_share_one_lattice(source: PhysicalSource) -> None:
    star, qso = draw(source, "G", 1), draw(source, "QSO", 1)
    offset = (star.loglam0 - qso.loglam0) / DLOGLAM
    assert offset == pytest.approx(round(offset), abs=1e-6)
    assert star.loglam[-1] == pytest.approx(qso.loglam[-1], abs=1e-12)


# ---------------------------------------------------------------- truth labels


@pytest.mark.parametrize("kind", STAR_KINDS)
def test_star_truth_follows_the_rules(source: PhysicalSource, kind: str) -> None:
    cool, hot = TEFF_RANGES[kind]
    loggs = []
    for seed in range(40):
        spec = draw(source, kind, seed, resolution=1e7)  # no broadening: fast
        assert cool <= spec.teff <= hot
        assert -2.5 <= spec.feh <= 0.5
        loggs.append(spec.logg)
        digit = int(np.clip(int(10 * (hot - spec.teff) / (hot - cool)), 0, 9))
        if kind in ("Carbon", "WD"):
            assert spec.subclass == kind
        else:
            assert re.fullmatch(rf"{kind}[0-9]", spec.subclass)
            assert spec.subclass == f"{kind}{digit}"
        assert spec.subclass == subclass_for(kind, spec.teff)
    lo, hi = LOGG_RANGES[kind]
    loggs = np.array(loggs)
    if kind in ("G", "K", "M"):
        giants = loggs < 3.5
        assert 0 < giants.sum() < len(loggs)  # 25 % giants: both populations appear
        assert np.all((loggs[giants] >= 1.0) & (loggs[giants] <= 3.0))
        loggs = loggs[~giants]
    assert np.all((loggs >= lo) & (loggs <= hi))


def test_subclass_digits_at_the_edges() -> None:
    assert subclass_for("G", 6000.0) == "G0"
    assert subclass_for("G", 5600.0) == "G5"
    assert subclass_for("G", 5200.0) == "G9"
    assert subclass_for("O", 34600.0) == "O6"
    assert subclass_for("B", 24000.0) == "B3"
    assert subclass_for("M", 2400.0) == "M9"
    assert subclass_for("WD", 20000.0) == "WD"


def test_galaxy_and_qso_truth(source: PhysicalSource) -> None:
    subclasses = set()
    for seed in range(20):
        gal = draw(source, "GALAXY", seed, resolution=1e7)
        assert gal.teff is None and gal.logg is None and gal.feh is None
        subclasses.add(gal.subclass)
        qso = draw(source, "QSO", seed, resolution=1e7)
        assert qso.subclass == "BROADLINE"
        assert qso.teff is None and qso.logg is None and qso.feh is None
    assert subclasses == {"STARFORMING", None}


# ---------------------------------------------------------------- physics


def test_hotter_classes_are_bluer(source: PhysicalSource) -> None:
    medians = []
    for kind in ("B", "A", "F", "G", "K", "M"):
        ratios = []
        for seed in range(5):
            spec = draw(source, kind, seed)
            ratios.append(window(spec, 4000, 4500).mean() / window(spec, 6500, 7000).mean())
        medians.append(np.median(ratios))
    assert np.all(np.diff(medians) < 0), medians


def halpha_depth(spec: RestFrameSpectrum) -> float:
    cont = linear_continuum(spec, (6430.0, 6460.0), (6670.0, 6700.0), 6564.61)
    return 1.0 - flux_at(spec, 6564.61) / cont


def test_halpha_absorption_deeper_in_a_than_k(source: PhysicalSource) -> None:
    a = np.median([halpha_depth(draw(source, "A", s)) for s in range(5)])
    k = np.median([halpha_depth(draw(source, "K", s)) for s in range(5)])
    assert a > 0.3 and k > 0.0
    assert a > 2 * k


def test_white_dwarf_balmer_lines_are_broader_than_a_stars(source: PhysicalSource) -> None:
    def width_at_80pct(spec: RestFrameSpectrum) -> float:
        lam = 10.0**spec.loglam
        cont = linear_continuum(spec, (4600.0, 4650.0), (5080.0, 5130.0), 4862.68)
        sel = (lam > 4700) & (lam < 5030)
        deep = spec.flux[sel] < 0.9 * cont
        return float(deep.sum() * DLOGLAM * np.log(10) * 4862.68)

    wd = next(s for s in (draw(source, "WD", i) for i in range(50)) if 10000 < s.teff < 16000)
    assert width_at_80pct(wd) > 3 * width_at_80pct(draw(source, "A", 0))


def test_m_star_has_a_sharp_tio_head_at_7054(source: PhysicalSource) -> None:
    for seed in range(5):
        spec = draw(source, "M", seed)
        blue = window(spec, 7035.0, 7048.0).mean()
        red = window(spec, 7060.0, 7073.0).mean()
        assert red < 0.95 * blue, (spec.subclass, red / blue)
    # A K star (too hot for TiO) shows no such drop.
    k = next(s for s in (draw(source, "K", i) for i in range(20)) if s.teff > 4500)
    assert window(k, 7060.0, 7073.0).mean() > 0.98 * window(k, 7035.0, 7048.0).mean()


def test_carbon_star_has_swan_band_heads(source: PhysicalSource) -> None:
    spec = draw(source, "Carbon", 3)
    # C2 bands degrade blueward: flux just redward of the 5165 head is higher.
    assert window(spec, 5172.0, 5185.0).mean() > 1.1 * window(spec, 5145.0, 5158.0).mean()


def test_galaxy_emission_only_when_star_forming(source: PhysicalSource) -> None:
    seen = set()
    for seed in range(12):
        gal = draw(source, "GALAXY", seed)
        cont = linear_continuum(gal, (6500.0, 6530.0), (6605.0, 6640.0), 6564.61)
        peak = window(gal, 6561.0, 6568.0).max()
        if gal.subclass == "STARFORMING":
            assert peak > 1.2 * cont
        else:
            assert peak < cont
        # Every galaxy has a 4000 A break.
        assert window(gal, 3850.0, 3950.0).mean() < window(gal, 4050.0, 4250.0).mean()
        seen.add(gal.subclass)
    assert seen == {"STARFORMING", None}


def test_qso_lines_and_lyman_alpha_forest(source: PhysicalSource) -> None:
    blue, red = (1320.0, 1360.0), (1440.0, 1465.0)
    for seed in range(5):
        qso = draw(source, "QSO", seed)
        lam = 10.0**qso.loglam
        for lam0, half in ((1215.67, 8.0), (1549.06, 5.0)):
            sel = np.abs(lam - lam0 - half / 2) < half / 2
            cont = power_law_continuum(qso, blue, red, lam[sel])
            assert np.mean(qso.flux[sel] / cont) > 1.1, (seed, lam0)
        sel = (lam > 1070.0) & (lam < 1140.0)
        cont = power_law_continuum(qso, blue, red, lam[sel])
        transmission = qso.flux[sel].mean() / cont.mean()
        assert 0.55 < transmission < 0.9, (seed, transmission)


def test_lsf_sets_the_width_of_the_narrowest_a_star_line(source: PhysicalSource) -> None:
    """Mg II 4482 (intrinsically ~0.4 A wide) takes the instrumental FWHM lambda / R."""
    lam0 = 4482.38
    for resolution in (1800.0, 1000.0):
        spec = draw(source, "A", 2, resolution)
        lam = 10.0**spec.loglam
        sel = (lam > lam0 - 12) & (lam < lam0 + 12)
        x, f = lam[sel], spec.flux[sel]
        side = np.abs(x - lam0) > 8
        cont = np.polyval(np.polyfit(x[side], f[side], 1), x)
        depth = 1.0 - f / cont
        fine = np.linspace(x[0], x[-1], 20001)
        d = np.interp(fine, x, depth)
        above = fine[d >= d.max() / 2]
        fwhm = above[-1] - above[0]
        assert d.max() > 0.03
        assert fwhm == pytest.approx(lam0 / resolution, rel=0.1), (resolution, fwhm)
