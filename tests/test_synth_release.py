"""Synthetic releases: round trips through the readers, manifest, determinism, mixes, S/N."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from raysurvey.io import read_spectrum
from raysurvey.labels import stellar8_label
from raysurvey.manifest import MANIFEST_COLUMNS
from raysurvey.synth import KINDS, SynthConfig, make_source, write_release
from raysurvey.synth.config import parse_classes
from raysurvey.synth.release import kind_for, plan, simulate
from raysurvey.synth.summary import true_type

CONVENTION_COLUMNS = (
    "uri", "survey", "obsid", "specobjid", "ra", "dec", "class", "subclass", "z", "zwarning",
    "snr_g", "snr_r", "snr_i", "true_class", "true_subclass", "true_z", "true_teff",
    "true_logg", "true_feh",
)  # fmt: skip


@pytest.fixture(scope="session")
def release(tmp_path_factory, templates_dir) -> tuple[SynthConfig, list[dict]]:
    """A balanced mixed release: every kind, both surveys, all four layouts."""
    out = str(tmp_path_factory.mktemp("release"))
    config = SynthConfig(n=88, out=out, templates=templates_dir, mix="balanced", seed=11)
    manifest = write_release(config, chunk_size=30, progress=False)
    return config, pq.read_table(manifest).to_pylist()


def test_manifest_has_the_convention_columns(release) -> None:
    config, rows = release
    assert set(CONVENTION_COLUMNS) <= set(MANIFEST_COLUMNS)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert len(rows) == config.n
    for row in rows:
        assert os.path.isabs(row["uri"]) and os.path.exists(row["uri"])
        assert (row["obsid"] is None) == (row["survey"] == "sdss")
        assert (row["specobjid"] is None) == (row["survey"] == "lamost")
    ids = [r["obsid"] or r["specobjid"] for r in rows]
    assert len(set(ids)) == len(ids) and len({r["uri"] for r in rows}) == len(rows)


def test_every_layout_reads_back_with_equal_arrays_and_labels(release) -> None:
    config, rows = release
    source = make_source(config.templates)
    layouts = Counter()
    for index, row in enumerate(rows):
        sim = simulate(config, source, index)
        spectrum = read_spectrum(row["uri"])
        layouts[(row["layout"], sim.plan.layout)] += 1
        observed = sim.observed
        np.testing.assert_array_equal(spectrum.flux, observed.flux)
        # LAMOST stores wavelength as float32, SDSS log10 wavelength as float32
        np.testing.assert_allclose(spectrum.wavelength, observed.wavelength, rtol=2e-6)
        good = ~spectrum.mask
        np.testing.assert_array_equal(spectrum.ivar[good], observed.ivar[good])
        np.testing.assert_array_equal(spectrum.mask, (observed.andmask != 0) | (observed.ivar <= 0))
        meta = spectrum.meta
        assert meta["survey"] == row["survey"]
        assert meta["class"] == row["class"]
        expected_subclass = (
            row["subclass"]
            if row["subclass"] is not None
            else ("Non" if row["survey"] == "lamost" else None)
        )
        assert meta["subclass"] == expected_subclass
        assert meta["z"] == pytest.approx(row["z"], rel=1e-5, abs=1e-7)
        assert meta["ra"] == pytest.approx(row["ra"], abs=1e-6)
        assert meta["dec"] == pytest.approx(row["dec"], abs=1e-6)
        assert meta["obsid"] == row["obsid"] and meta["specobjid"] == row["specobjid"]
        assert meta["snr_r"] == pytest.approx(row["snr_r"], abs=0.01)
    assert {layout for _, layout in layouts} == {"lamost_image", "lamost_table", "SPECOBJ", "SPALL"}


def test_truth_labels_follow_the_kind(release) -> None:
    config, rows = release
    counts = Counter(true_type(r["true_class"], r["true_subclass"]) for r in rows)
    assert counts == {kind: config.n // len(KINDS) for kind in KINDS}  # balanced: exact
    for row in rows:
        if row["true_class"] == "STAR":
            assert row["true_teff"] is not None and row["true_logg"] is not None
            assert row["true_feh"] is not None
            assert abs(row["true_z"]) < 500 / 299_792.458
        else:
            assert row["true_teff"] is None and row["true_z"] > 0.0


def test_gzip_layouts_round_trip(tmp_path, templates_dir) -> None:
    config = SynthConfig(n=12, out=str(tmp_path), templates=templates_dir, gzip=True, seed=2)
    rows = pq.read_table(write_release(config, chunk_size=12, progress=False)).to_pylist()
    for row in rows:
        assert row["uri"].endswith(".fits.gz")
        with open(row["uri"], "rb") as handle:
            assert handle.read(2) == b"\x1f\x8b"
        assert read_spectrum(row["uri"]).meta["class"] == row["class"]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, templates_dir) -> None:
    def build(name: str, seed: int) -> dict[str, bytes]:
        out = tmp_path / name
        write_release(
            SynthConfig(n=10, out=str(out), templates=templates_dir, seed=seed), 4, progress=False
        )
        files = {}
        for root, _, names in os.walk(out):
            for file in names:
                if file != "manifest.parquet":
                    files[os.path.relpath(os.path.join(root, file), out)] = (
                        out / root / file
                    ).read_bytes()
        return files

    first, again, other = build("a", 1), build("b", 1), build("c", 2)
    assert first == again and len(first) == 10
    assert first != other
    manifest_a = pq.read_table(tmp_path / "a/manifest.parquet").drop(["uri"])
    manifest_b = pq.read_table(tmp_path / "b/manifest.parquet").drop(["uri"])
    assert manifest_a.equals(manifest_b)


def test_survey_mix_fractions_and_class_subsets() -> None:
    config = SynthConfig(n=20000, out="unused", mix="survey", seed=4)
    counts = Counter(kind_for(config, i) for i in range(config.n))
    from raysurvey.synth.config import SURVEY_FRACTIONS

    for kind, fraction in SURVEY_FRACTIONS.items():
        expected = fraction * config.n
        assert abs(counts[kind] - expected) <= 4 * np.sqrt(expected) + 2, kind
    stellar = SynthConfig(n=800, out="unused", mix="balanced", classes=parse_classes(["stellar8"]))
    counts = Counter(kind_for(stellar, i) for i in range(stellar.n))
    assert counts == {k: 100 for k in ("O", "B", "A", "F", "G", "K", "M", "Carbon")}
    with pytest.raises(ValueError):
        parse_classes(["Z"])


def test_snr_distribution_matches_what_was_asked() -> None:
    config = SynthConfig(
        n=1, out="unused", snr_median=25.0, snr_sigma=0.5, snr_min=10.0, snr_max=200.0
    )
    draws = np.array([plan(config, i, np.random.default_rng([0, i])).snr_r for i in range(8000)])
    assert draws.min() >= 10.0 and draws.max() <= 200.0
    rng = np.random.default_rng(1)
    reference = rng.lognormal(np.log(25.0), 0.5, 200_000)
    reference = reference[(reference >= 10) & (reference <= 200)]
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert np.quantile(draws, q) == pytest.approx(np.quantile(reference, q), rel=0.04)


def test_measured_snr_tracks_the_target(release) -> None:
    config, rows = release
    source = make_source(config.templates)
    ratios = [rows[i]["snr_r"] / simulate(config, source, i).plan.snr_r for i in range(len(rows))]
    assert np.median(ratios) == pytest.approx(1.0, abs=0.05)
    assert np.quantile(ratios, 0.05) > 0.7 and np.quantile(ratios, 0.95) < 1.3


def test_label_noise_rate(templates_dir) -> None:
    config = SynthConfig(n=1, out="unused", templates=templates_dir, label_noise=0.3, survey="sdss",
                         snr_min=5.0, seed=9)  # fmt: skip
    source = make_source(templates_dir)
    wrong = 0
    for index in range(150):
        sim = simulate(config, source, index)
        truth = "STAR" if sim.rest.kind not in ("GALAXY", "QSO") else sim.rest.kind
        truth_label = stellar8_label("STAR", sim.rest.subclass) if truth == "STAR" else None
        label = (
            stellar8_label(sim.labels.survey_class, sim.labels.subclass)
            if truth == "STAR"
            else None
        )
        wrong += sim.labels.survey_class != truth or label != truth_label
    assert 0.15 < wrong / 150 < 0.45
    clean = SynthConfig(n=1, out="unused", templates=templates_dir, label_noise=0.0, survey="sdss")
    for index in range(40):
        sim = simulate(clean, source, index)
        assert sim.labels.survey_class == (
            "STAR" if sim.rest.kind not in ("GALAXY", "QSO") else sim.rest.kind
        )


def test_physical_model_release_without_templates(tmp_path) -> None:
    config = SynthConfig(n=11, out=str(tmp_path), templates=None, mix="balanced", seed=3)
    rows = pq.read_table(write_release(config, chunk_size=11, progress=False)).to_pylist()
    assert Counter(true_type(r["true_class"], r["true_subclass"]) for r in rows) == dict.fromkeys(
        KINDS, 1
    )
    for row in rows:
        read_spectrum(row["uri"])


def test_release_on_s3(s3_bucket, templates_dir) -> None:
    import fsspec

    config = SynthConfig(n=8, out=f"{s3_bucket}/rel", templates=templates_dir, seed=5)
    manifest = write_release(config, chunk_size=4, progress=False)
    assert manifest == f"{s3_bucket}/rel/manifest.parquet"
    with fsspec.open(manifest, "rb") as handle:
        rows = pq.read_table(handle).to_pylist()
    assert len(rows) == 8
    for row in rows:
        assert row["uri"].startswith(f"{s3_bucket}/rel/")
        assert read_spectrum(row["uri"]).meta["class"] == row["class"]


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError):
        SynthConfig(n=1, out="x", survey="desi")
    with pytest.raises(ValueError):
        SynthConfig(n=1, out="x", classes=("Q",))
    with pytest.raises(ValueError):
        SynthConfig(n=1, out="x", snr_min=50, snr_max=10)
