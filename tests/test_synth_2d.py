"""Synthetic 2D stripes and g, r, i cutouts: files, physics, determinism, S3, CLI."""

from __future__ import annotations

import os
import posixpath

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from raysurvey.cli import _synth_config, build_parser
from raysurvey.data.decode_2d import decode_cutouts, decode_stripes
from raysurvey.io import read_cutout, read_spectrum, read_stripes
from raysurvey.manifest import MANIFEST_COLUMNS
from raysurvey.synth import SynthConfig, make_source, write_release
from raysurvey.synth.photometry import BANDS, band_magnitudes, psf_image, simulate_cutout
from raysurvey.synth.release import CUTOUT_STREAM, STRIPES_STREAM, product_rng, simulate
from raysurvey.synth.stripes import response, simulate_stripes


@pytest.fixture(scope="session")
def release_2d(tmp_path_factory, templates_dir) -> tuple[SynthConfig, list[dict]]:
    """22 spectra, every kind twice, both surveys; a third of the stripes contaminated."""
    out = str(tmp_path_factory.mktemp("release2d"))
    config = SynthConfig(
        n=22, out=out, templates=templates_dir, mix="balanced", seed=5, snr_median=30.0,
        snr_min=8.0, with_2d=True, with_photometry=True, fibre_contamination=0.3,
        realism="clean",  # colours are compared with the 1D files: no LAMOST flux tilts
    )  # fmt: skip
    manifest = write_release(config, chunk_size=11, progress=False)
    return config, pq.read_table(manifest).to_pylist()


def test_manifest_names_one_stripes_and_one_cutout_file_per_spectrum(release_2d) -> None:
    config, rows = release_2d
    assert {"stripes_uri", "cutout_uri"} <= set(MANIFEST_COLUMNS)
    for row in rows:
        relative = os.path.relpath(row["uri"], config.out)
        head, name = posixpath.split(relative)
        stem = name.removesuffix(".fits")
        assert row["stripes_uri"] == os.path.join(
            config.out, "stripes", head, f"{stem}-stripes.fits"
        )
        assert row["cutout_uri"] == os.path.join(config.out, "cutouts", head, f"{stem}-gri.fits")
        assert os.path.exists(row["stripes_uri"]) and os.path.exists(row["cutout_uri"])
    assert sum(read_stripes(r["stripes_uri"]).meta["contaminated"] for r in rows) >= 2


def test_products_read_back_equal_to_what_was_simulated(release_2d) -> None:
    config, rows = release_2d
    source = make_source(config.templates)
    for index, row in enumerate(rows):
        sim = simulate(config, source, index)
        rng = product_rng(config, index, STRIPES_STREAM)
        made = simulate_stripes(sim.rest, sim.plan.z, sim.plan.snr_r, rng, 0.3)
        stripes = read_stripes(row["stripes_uri"])
        for arm in ("blue", "red"):
            truth = getattr(made, arm)
            np.testing.assert_array_equal(stripes.image(arm), truth.image)
            np.testing.assert_array_equal(getattr(stripes, f"sky_{arm}"), truth.sky)
            np.testing.assert_allclose(stripes.wave(arm), truth.wave, rtol=1e-9)
            assert stripes.trace_row[arm] == pytest.approx(truth.trace_row, abs=1e-4)
            assert stripes.meta[f"gain_{arm}"] == pytest.approx(truth.gain, abs=1e-4)
            assert stripes.meta[f"rdnoise_{arm}"] == pytest.approx(truth.rdnoise, abs=1e-4)
        cutout = read_cutout(row["cutout_uri"])
        rng = product_rng(config, index, CUTOUT_STREAM)
        made_cutout = simulate_cutout(sim.rest, sim.plan.z, sim.plan.snr_r, rng)
        np.testing.assert_array_equal(cutout.gri, made_cutout.images)
        assert cutout.bands == BANDS and cutout.pixscale == pytest.approx(0.396)
        for band in BANDS:
            assert cutout.seeing[band] == pytest.approx(made_cutout.seeing[band], abs=1e-4)
        for product in (stripes, cutout):
            meta = product.meta
            assert meta["survey"] == row["survey"] and meta["class"] == row["class"]
            assert meta["obsid"] == row["obsid"] and meta["specobjid"] == row["specobjid"]
            assert meta["ra"] == pytest.approx(row["ra"], abs=1e-6)
            assert meta["z"] == pytest.approx(row["z"], rel=1e-6, abs=1e-8)
            assert meta["snr_r"] == pytest.approx(row["snr_r"], abs=0.01)
            assert meta["specfile"] == os.path.basename(row["uri"])


def test_gzip_products_hold_the_same_arrays(tmp_path, templates_dir) -> None:
    def build(name: str, gz: bool) -> list[dict]:
        config = SynthConfig(n=3, out=str(tmp_path / name), templates=templates_dir, seed=8,
                             gzip=gz, with_2d=True, with_photometry=True)  # fmt: skip
        return pq.read_table(write_release(config, chunk_size=3, progress=False)).to_pylist()

    for plain, packed in zip(build("plain", False), build("gz", True), strict=True):
        for column in ("stripes_uri", "cutout_uri"):
            assert packed[column].endswith(".fits.gz")
            with open(packed[column], "rb") as handle:
                assert handle.read(2) == b"\x1f\x8b"
        a, b = read_stripes(plain["stripes_uri"]), read_stripes(packed["stripes_uri"])
        np.testing.assert_array_equal(a.blue, b.blue)
        np.testing.assert_array_equal(a.red, b.red)
        a, b = read_cutout(plain["cutout_uri"]), read_cutout(packed["cutout_uri"])
        np.testing.assert_array_equal(a.gri, b.gri)


def _binned_median(wave: np.ndarray, flux: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Median of ``flux`` in each wavelength bin (NaN where fewer than 5 pixels)."""
    index = np.digitize(wave, edges) - 1
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(edges.size))
    out = np.full(edges.size - 1, np.nan)
    for k in range(edges.size - 1):
        inside = flux[order[bounds[k] : bounds[k + 1]]]
        if inside.size >= 5:
            out[k] = np.median(inside)
    return out


def test_collapsed_stripe_correlates_with_its_1d_spectrum(release_2d) -> None:
    """Sum over rows, sky subtracted, back to f_lambda (x gain / (response x lambda x
    dlambda)) against the 1D file, both as medians in 20 A bins over 3700-9000 A,
    after dividing out a quadratic in wavelength (the 1D file's smooth flux-calibration
    residual, which observe.py models exactly so). At S/N_r >= 8 a bin median carries
    a few per cent of noise while spectra vary by tens of per cent across the range,
    so r is ~0.99 and above; 0.9 leaves room for flat, noisy K stars (lowest seen:
    0.95); medians ignore cosmic rays and sky-line residuals."""
    _, rows = release_2d
    edges = np.arange(3700.0, 9001.0, 20.0)
    centres = 0.5 * (edges[1:] + edges[:-1])
    correlations = []
    for row in rows:
        stripes, spectrum = read_stripes(row["stripes_uri"]), read_spectrum(row["uri"])
        waves, fluxes = [], []
        for arm in ("blue", "red"):
            wave = stripes.wave(arm)
            through = response(arm, wave)
            keep = through > 0.25 * through.max()
            gain = stripes.meta[f"gain_{arm}"]
            flux = stripes.collapse(arm) * gain / (through * wave * np.gradient(wave))
            waves.append(wave[keep])
            fluxes.append(flux[keep])
        from_2d = _binned_median(np.concatenate(waves), np.concatenate(fluxes), edges)
        good = ~spectrum.mask
        from_1d = _binned_median(spectrum.wavelength[good], spectrum.flux[good], edges)
        ok = np.isfinite(from_1d) & np.isfinite(from_2d)
        assert ok.sum() > 200
        x = (centres[ok] - 6350.0) / 2650.0
        calibration = np.polyval(np.polyfit(x, from_1d[ok] / from_2d[ok], 2), x)
        correlations.append(np.corrcoef(from_1d[ok], from_2d[ok] * calibration)[0, 1])
    assert min(correlations) > 0.9, correlations
    assert np.median(correlations) > 0.99


def test_stripe_snr_tracks_the_spectrum_snr(release_2d) -> None:
    """Median S/N per column of the box extraction in the red arm at 5900-6900 A, from
    the counts, GAIN and RDNOISE, against the 1D file's S/N_r. Contaminated stripes are
    left out: the neighbour's light adds to the box sum."""
    _, rows = release_2d
    pairs = []
    for row in rows:
        stripes = read_stripes(row["stripes_uri"])
        if not stripes.meta["contaminated"]:
            pairs.append((stripes.snr("red"), row["snr_r"]))
    ratio = np.array([a / b for a, b in pairs])
    assert len(pairs) >= 12
    assert np.median(ratio) == pytest.approx(1.0, abs=0.06)
    assert ratio.min() > 0.75 and ratio.max() < 1.33
    logs = np.log(np.array(pairs))
    assert np.corrcoef(logs[:, 0], logs[:, 1])[0, 1] > 0.95


def test_1d_files_and_manifest_are_unchanged_by_the_products(tmp_path, templates_dir) -> None:
    def build(name: str, products: bool) -> tuple[dict[str, bytes], object]:
        out = tmp_path / name
        config = SynthConfig(n=10, out=str(out), templates=templates_dir, seed=4,
                             with_2d=products, with_photometry=products)  # fmt: skip
        write_release(config, 4, progress=False)
        files = {}
        for survey in ("lamost", "sdss"):
            for root, _, names in os.walk(out / survey):
                for file in names:
                    path = os.path.join(root, file)
                    files[os.path.relpath(path, out)] = open(path, "rb").read()
        return files, pq.read_table(out / "manifest.parquet")

    plain, plain_manifest = build("plain", False)
    with_products, products_manifest = build("products", True)
    assert len(plain) == 10 and plain == with_products
    assert plain_manifest.column("stripes_uri").null_count == 10
    assert plain_manifest.column("cutout_uri").null_count == 10
    assert products_manifest.column("stripes_uri").null_count == 0
    drop = ["uri", "stripes_uri", "cutout_uri"]
    assert plain_manifest.drop(drop).equals(products_manifest.drop(drop))
    assert os.path.isdir(tmp_path / "products/stripes") and os.path.isdir(
        tmp_path / "products/cutouts"
    )
    assert not os.path.exists(tmp_path / "plain/stripes")


def _second_moment(image: np.ndarray, x0: float, y0: float, width: float = 4.0) -> float:
    """Gaussian-weighted <r^2> about (x0, y0): robust to noise and field stars."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    r2 = (xx - x0) ** 2 + (yy - y0) ** 2
    weighted = image * np.exp(-0.5 * r2 / width**2)
    return float((weighted * r2).sum() / weighted.sum())


def test_stars_and_qsos_are_point_like_galaxies_extended(release_2d) -> None:
    """The r image's weighted second moment against that of the PSF the header states
    (SEEING, at the same centre): 1 for a point source, well above for a galaxy."""
    _, rows = release_2d
    for row in rows:
        cutout = read_cutout(row["cutout_uri"])
        header = fits.getheader(row["cutout_uri"])  # the truth keywords of synthetic files
        x0, y0 = header["XCEN"], header["YCEN"]
        size = _second_moment(cutout.gri[1], x0, y0)
        psf = _second_moment(psf_image(cutout.seeing["r"], (x0, y0)), x0, y0)
        if row["true_class"] == "GALAXY":
            assert cutout.meta["morph"] in ("EXP", "DEV")
            assert size / psf > 1.3, row["true_subclass"]
        else:
            assert cutout.meta["morph"] == "PSF"
            assert size / psf == pytest.approx(1.0, abs=0.15), row["true_subclass"]


def _aperture_colour(cutout, radius: float = 12.0) -> dict[str, float]:
    yy, xx = np.mgrid[0:64, 0:64]
    inside = np.hypot(xx - 31.5, yy - 31.5) <= radius
    flux = {band: cutout.gri[k][inside].sum() for k, band in enumerate(BANDS)}
    return {
        "g-r": float(-2.5 * np.log10(flux["g"] / flux["r"])),
        "r-i": float(-2.5 * np.log10(flux["r"] / flux["i"])),
    }


def test_colours_come_from_the_spectrum(release_2d) -> None:
    """Aperture colours of the point sources equal the colours of their 1D files
    integrated through the same bandpasses (within 0.15 mag: the 1D file's 8 %
    calibration residual and the aperture's PSF losses), and hot stars are bluer in
    g - r than M stars."""
    _, rows = release_2d
    g_r = {}
    for row in rows:
        if row["true_class"] == "GALAXY":
            continue
        cutout = read_cutout(row["cutout_uri"])
        if cutout.meta["mag_r"] > 19.0:
            continue  # too faint for a 0.15 mag colour in the g band
        spectrum = read_spectrum(row["uri"])
        flux = np.where(spectrum.mask, np.nan, spectrum.flux)
        mags = band_magnitudes(spectrum.wavelength, flux)
        colour = _aperture_colour(cutout)
        assert colour["g-r"] == pytest.approx(mags["g"] - mags["r"], abs=0.15), row
        assert colour["r-i"] == pytest.approx(mags["r"] - mags["i"], abs=0.15), row
        g_r.setdefault(row["true_subclass"][:1], []).append(colour["g-r"])
    hot = g_r.get("O", []) + g_r.get("B", []) + g_r.get("A", [])
    assert hot and g_r.get("M"), g_r
    assert max(hot) < min(g_r["M"]) - 1.0


def test_a_neighbouring_fibre_lights_the_edge_rows(templates_dir) -> None:
    config = SynthConfig(n=1, out="unused", templates=templates_dir, seed=2, snr_min=20.0)
    sim = simulate(config, make_source(templates_dir), 0)

    def edge_fraction(contamination: float, seed: int) -> float:
        rng = np.random.default_rng(seed)
        red = simulate_stripes(sim.rest, sim.plan.z, sim.plan.snr_r, rng, contamination).red
        rows = red.image.sum(axis=1)
        return float(max(rows[:2].sum(), rows[-2:].sum()) / rows.sum())

    clean = [edge_fraction(0.0, seed) for seed in range(4)]
    dirty = [edge_fraction(1.0, seed) for seed in range(4)]
    assert max(clean) < 0.02 and min(dirty) > 2 * max(clean), (clean, dirty)


def test_cli_and_job_flags_reach_the_config(tmp_path) -> None:
    argv = ["synth", "--n", "2", "--out", str(tmp_path), "--with-2d", "--with-photometry",
            "--fibre-contamination", "0.25"]  # fmt: skip
    config = _synth_config(build_parser().parse_args(argv))
    assert config.with_2d and config.with_photometry and config.fibre_contamination == 0.25
    default = _synth_config(build_parser().parse_args(["synth", "--n", "2", "--out", "x"]))
    assert not default.with_2d and not default.with_photometry
    with pytest.raises(ValueError):
        SynthConfig(n=1, out="x", fibre_contamination=1.5)


def test_release_with_products_on_s3(s3_bucket, templates_dir) -> None:
    import fsspec

    config = SynthConfig(n=4, out=f"{s3_bucket}/rel2d", templates=templates_dir, seed=6,
                         with_2d=True, with_photometry=True, gzip=True)  # fmt: skip
    manifest = write_release(config, chunk_size=2, progress=False)
    with fsspec.open(manifest, "rb") as handle:
        rows = pq.read_table(handle).to_pylist()
    stripes_uris = [r["stripes_uri"] for r in rows]
    cutout_uris = [r["cutout_uri"] for r in rows]
    for uri in stripes_uris + cutout_uris:
        assert uri.startswith(f"{s3_bucket}/rel2d/") and uri.endswith(".fits.gz")
    stripes = read_stripes(stripes_uris[0])
    assert stripes.meta["uri"] == stripes_uris[0] and stripes.meta["obsid"] == rows[0]["obsid"]
    assert read_cutout(cutout_uris[0]).gri.shape == (3, 64, 64)
    decoded = decode_stripes(stripes_uris + [None])
    assert list(decoded["status"]) == ["ok"] * 4 + ["error"]
    np.testing.assert_array_equal(decoded["stripe_blue"][0], stripes.blue)
    cutouts = decode_cutouts(cutout_uris)
    assert list(cutouts["status"]) == ["ok"] * 4 and np.isfinite(cutouts["cutout_gri"]).all()
