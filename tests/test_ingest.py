"""Manifests from real files, real-set reports, training on several manifests, and the
synthetic writers' real-file variants."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysurvey.cli import main
from raysurvey.ingest import READ_ERROR_COLUMN, UNKNOWN_SURVEY, build_manifest
from raysurvey.io import read_spectrum
from raysurvey.modalities import compute
from raysurvey.realcheck import agreement_report
from raysurvey.realdata import realset_table
from raysurvey.train.data import DataSpec, parse_manifest_arg, training_tables

REAL_FILES = (
    "lamost/spec-55862-B6212_sp06-003.fits",
    "sdss/spec-1493-52933-0582.fits",
    "sdss/spec-0269-51581-0003.fits",  # all zeros: an error row
)


@pytest.fixture
def small_real_dir(realdata_dir, tmp_path):
    for name in REAL_FILES:
        target = tmp_path / "files" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(realdata_dir / name, target)
    (tmp_path / "files" / "junk.fits").write_bytes(b"not a fits file at all")
    return tmp_path / "files"


def test_manifest_from_real_files_keeps_every_file(small_real_dir, tmp_path, capsys):
    out = tmp_path / "m.parquet"
    assert main(["manifest", str(small_real_dir), "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 4  # one row per file, unreadable ones included
    rows = {r["uri"].rsplit("/", 1)[1]: r for r in table.to_pylist()}
    lamost = rows["spec-55862-B6212_sp06-003.fits"]
    assert lamost["survey"] == "lamost" and lamost["class"] == "STAR"
    assert lamost["subclass"] == "F9" and lamost["layout"] == "lamost_dr1"
    assert lamost["true_class"] is None and lamost[READ_ERROR_COLUMN] is None
    sdss = rows["spec-1493-52933-0582.fits"]
    assert sdss["survey"] == "sdss" and sdss["specobjid"] and sdss["layout"] == "sdss_spec"
    assert rows["junk.fits"][READ_ERROR_COLUMN].startswith("not_fits")
    assert rows["junk.fits"]["survey"] == UNKNOWN_SURVEY
    assert rows["spec-0269-51581-0003.fits"][READ_ERROR_COLUMN].startswith("no_valid_flux")
    printed = capsys.readouterr()
    assert "4 files" in printed.out and "no_valid_flux 1" in printed.out
    assert "manifest: 4/4 files" in printed.err  # progress on stderr


def test_manifest_of_nothing_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no FITS files"):
        build_manifest([str(tmp_path / "empty")], str(tmp_path / "m.parquet"))


def test_realset_manifest_takes_the_csv_labels(realdata_dir):
    table = realset_table(realdata_dir, headers=False)
    assert table.num_rows == len((realdata_dir / "MANIFEST.csv").read_text().splitlines()) - 1
    programs = set(table.column("program").to_pylist())
    assert programs == {"LAMOST", "SDSS", "BOSS"}
    assert set(table.column("survey").to_pylist()) == {"lamost", "sdss"}


def test_agreement_report_counts_by_hand():
    labels = pa.Table.from_pylist(
        [
            {"uri": "a", "program": "LAMOST", "class": "STAR", "subclass": "G5", "snr_r": 30.0},
            {"uri": "b", "program": "SDSS", "class": "QSO", "subclass": "", "snr_r": 3.0},
            {"uri": "c", "program": "BOSS", "class": "QSO", "subclass": "", "snr_r": 7.0},
            {"uri": "d", "program": "SDSS", "class": "GALAXY", "subclass": "", "snr_r": 12.0},
            {"uri": "e", "program": "LAMOST", "class": "UNKNOWN", "subclass": "", "snr_r": 1.0},
            {"uri": "f", "program": "SDSS", "class": "GALAXY", "subclass": "", "snr_r": 9.0},
        ]
    )
    catalog = pa.Table.from_pylist(
        [
            {"uri": "a", "status": "ok", "pred_class": "STAR", "pred_subclass": "K1"},
            {"uri": "b", "status": "ok", "pred_class": "STAR", "pred_subclass": None},
            {"uri": "c", "status": "ok", "pred_class": "QSO", "pred_subclass": None},
            {"uri": "d", "status": "ok", "pred_class": "GALAXY", "pred_subclass": None},
            {"uri": "e", "status": "ok", "pred_class": "STAR", "pred_subclass": None},
            {"uri": "f", "status": "error", "error": "no_valid_flux: x", "pred_class": None},
        ]
    )
    report = agreement_report(catalog, labels)
    assert report.overall == (3, 4)  # e excluded (UNKNOWN), f a read error
    assert report.by_class == {"STAR": (1, 1), "QSO": (1, 2), "GALAXY": (1, 1)}
    assert report.by_group[("SDSS", "QSO")] == (0, 1)
    assert report.by_snr == {"0-5": (0, 1), "5-10": (1, 1), "10-20": (1, 1), ">20": (1, 1)}
    assert report.confusion[("QSO", "STAR")] == 1
    assert report.stellar_first_letter == (0, 1)  # G5 called K1
    assert [m["uri"] for m in report.misses] == ["b"] and len(report.errors) == 1
    assert report.excluded == 1
    assert "agreement with the survey pipeline" in "\n".join(report.lines())


def _manifest(path, rows):
    base = {"survey": "sdss", "obsid": None, "subclass": None}
    table = pa.Table.from_pylist([base | r for r in rows])
    pq.write_table(table, path)
    return str(path)


def test_training_on_several_manifests_with_weights(tmp_path):
    synth = _manifest(
        tmp_path / "s.parquet",
        [
            {
                "uri": f"s{i}",
                "specobjid": f"s{i}",
                "class": "STAR",  # the pipeline label is wrong; truth wins
                "true_class": "QSO",
                "true_subclass": None,
            }
            for i in range(200)
        ],
    )
    real = _manifest(
        tmp_path / "r.parquet",
        [{"uri": f"r{i}", "specobjid": f"r{i}", "class": "GALAXY"} for i in range(100)],
    )
    uri, weight = parse_manifest_arg(f"{real}@2.5")
    assert (uri, weight) == (real, 2.5)
    assert parse_manifest_arg("s3://bucket/a@b/m.parquet") == ("s3://bucket/a@b/m.parquet", 1.0)
    tables = training_tables(
        DataSpec(manifest=(synth, uri), manifest_weights=(1.0, weight), labels="class3")
    )
    train = tables.splits["train"]
    names = train.column("label_name").to_pylist()
    real_rows = sum(u.startswith("r") for u in train.column("uri").to_pylist())
    synth_rows = sum(u.startswith("s") for u in train.column("uri").to_pylist())
    assert set(names) == {"QSO", "GALAXY"}  # synthetic rows labelled by their truth
    n_real_train = sum(
        u.startswith("r")
        for split in ("train",)
        for u in training_tables(DataSpec(manifest=(synth, uri), labels="class3"))
        .splits[split]
        .column("uri")
        .to_pylist()
    )
    assert real_rows == round(2.5 * n_real_train) and 140 < synth_rows < 180
    # validation and test splits are never resampled
    assert tables.splits["val"].num_rows + tables.splits["test"].num_rows < 60


def test_robust_flux1d_ignores_one_spike():
    x = np.linspace(0.0, 1.0, 3700, dtype=np.float32)
    spiked = x.copy()
    spiked[100] = 1e4
    robust = compute("flux1d", {"flux": np.stack([x, spiked])}, norm="robust")
    minmax = compute("flux1d", {"flux": np.stack([x, spiked])})
    # the ramp's 1st..99th percentiles map to 0..1 whichever row holds the spike
    np.testing.assert_allclose(robust[0, 1850], 0.5, atol=1e-3)
    np.testing.assert_allclose(robust[1, 1850], 0.5, atol=1e-3)
    assert robust[1, 100] == pytest.approx(1.25)  # clipped
    assert minmax[1, 1850] < 1e-3  # min-max squashes the spiked row flat


def test_synthetic_files_carry_the_real_variants(tmp_path, templates_dir):
    """Writers produce LAMOST commas, SDSS informational bits and files without EXTNAME;
    every one reads back with its labels."""
    from astropy.io import fits

    from raysurvey.synth import SynthConfig, write_release

    config = SynthConfig(
        n=40, out=str(tmp_path / "rel"), templates=templates_dir, mix="balanced", seed=3
    )
    write_release(config)
    table = pq.read_table(tmp_path / "rel" / "manifest.parquet").to_pylist()
    seen = {"commas": 0, "unnamed": 0, "info_bits": 0}
    for row in table:
        spectrum = read_spectrum(row["uri"])
        assert spectrum.meta["class"] == row["class"]
        with fits.open(row["uri"]) as hdul:
            if row["survey"] == "lamost" and "," in str(hdul[0].header.get("EXTEN0", "")):
                seen["commas"] += 1
            if row["survey"] == "sdss":
                seen["unnamed"] += hdul[1].name == ""
                and_mask = np.asarray(hdul[1].data.field(3)).astype(np.int64)
                seen["info_bits"] += bool(np.all(and_mask & 0x30014))
    assert all(seen.values()), seen
