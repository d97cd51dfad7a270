"""The Ray Data pipeline over a synthetic release with corrupted files, and build_features."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from raysurvey.data import ComputeModalities, build_dataset, decode_uris
from raysurvey.data.features import parse_options
from raysurvey.synth import SynthConfig, write_release

MODALITIES = ["flux1d", "map2d", "mel"]
N_SPECTRA = 500
CORRUPTED = {3: "truncated", 77: "not_fits", 250: "not_found"}


@pytest.fixture(scope="session")
def damaged_release(tmp_path_factory, templates_dir) -> tuple[str, dict[str, str]]:
    """500 spectra (mixed surveys and layouts) of which 3 files are then broken."""
    out = tmp_path_factory.mktemp("release500")
    manifest = write_release(
        SynthConfig(n=N_SPECTRA, out=str(out), templates=templates_dir, seed=11),
        progress=False,
    )
    uris = pq.read_table(manifest, columns=["uri"]).column("uri").to_pylist()
    broken = {}
    for index, reason in CORRUPTED.items():
        path = Path(uris[index])
        if reason == "truncated":
            path.write_bytes(path.read_bytes()[:4000])
        elif reason == "not_fits":
            path.write_bytes(b"<html>503 Service Unavailable</html>" * 100)
        else:
            path.unlink()
        broken[uris[index]] = reason
    return manifest, broken


@pytest.fixture(scope="session")
def pipeline_rows(damaged_release, ray_cluster) -> list[dict]:
    manifest, _ = damaged_release
    options = {"map2d": {"variant": "per_survey"}}
    ds = build_dataset(manifest, MODALITIES, options)
    rows = []
    for batch in ds.iter_batches(batch_format="numpy", batch_size=100):
        keys = list(batch)
        rows.extend({k: batch[k][i] for k in keys} for i in range(len(batch["uri"])))
    return rows


def test_every_manifest_row_comes_out_once_with_three_errors(damaged_release, pipeline_rows):
    manifest, broken = damaged_release
    assert len(pipeline_rows) == N_SPECTRA
    uris = [r["uri"] for r in pipeline_rows]
    assert len(set(uris)) == N_SPECTRA
    assert set(uris) == set(pq.read_table(manifest).column("uri").to_pylist())
    errors = {r["uri"]: r for r in pipeline_rows if r["status"] == "error"}
    assert set(errors) == set(broken)
    for uri, reason in broken.items():
        assert errors[uri]["error"].startswith(reason + ":"), errors[uri]["error"]
        for name in MODALITIES:
            assert not errors[uri][name].any()  # zeros in the stream, status says why
    ok = [r for r in pipeline_rows if r["status"] == "ok"]
    assert all(r["error"] == "" and r["good_fraction"] > 0.5 for r in ok)
    assert ok[0]["map2d"].shape == (224, 224, 3) and ok[0]["mel"].shape == (64, 62)
    assert ok[0]["flux1d"].shape == (3700,)


def test_pipeline_values_equal_the_plain_functions(damaged_release, pipeline_rows):
    _, broken = damaged_release
    by_uri = {r["uri"]: r for r in pipeline_rows}
    sample = sorted(by_uri)[:30] + sorted(broken)
    decoded = decode_uris(sample)
    batch = {"flux": decoded["flux"], "status": decoded["status"]}
    batch["survey"] = np.array([by_uri[u]["survey"] for u in sample])
    expected = ComputeModalities(MODALITIES, {"map2d": {"variant": "per_survey"}})(batch)
    for i, uri in enumerate(sample):
        row = by_uri[uri]
        assert row["status"] == decoded["status"][i]
        assert row["snr"] == pytest.approx(decoded["snr"][i])
        for name in MODALITIES:
            np.testing.assert_array_equal(row[name], expected[name][i], err_msg=f"{name} {uri}")


def test_manifest_columns_keep_their_types(pipeline_rows):
    lamost = next(r for r in pipeline_rows if r["survey"] == "lamost")
    sdss = next(r for r in pipeline_rows if r["survey"] == "sdss")
    assert isinstance(lamost["obsid"], (int, np.integer)) or float(lamost["obsid"]).is_integer()
    assert isinstance(sdss["specobjid"], str) and sdss["specobjid"].isdigit()
    assert {"class", "true_class", "snr_r", "ra", "dec"} <= set(lamost)


def test_parse_options():
    assert parse_options(["map2d.variant=spectromer", "flux1d.median_filter=9"]) == {
        "map2d": {"variant": "spectromer"},
        "flux1d": {"median_filter": 9},
    }
    with pytest.raises(ValueError, match="NAME.OPTION=VALUE"):
        parse_options(["variant=paper"])
    with pytest.raises(ValueError, match="unknown modalities"):
        build_dataset("unused.parquet", ["flux1d", "spectrogram"])


def test_build_features_writes_one_row_per_spectrum_with_null_errors(
    damaged_release, ray_cluster, tmp_path, capsys
):
    sys.path.insert(0, "jobs")
    try:
        import build_features
    finally:
        sys.path.pop(0)
    manifest, broken = damaged_release
    out = tmp_path / "features"
    argv = ["--manifest", manifest, "--modalities", "flux1d,audio", "--out", str(out)]
    argv += ["--option", "mel.variant=code", "--rows-per-file", "100"]
    assert build_features.main(argv) == 0
    assert "500 rows (3 with status=error)" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.num_rows == N_SPECTRA
    assert len(set(table.column("uri").to_pylist())) == N_SPECTRA
    assert str(table.schema.field("mfcc").type).startswith("extension<arrow.fixed_shape_tensor")
    errors = table.filter(np.asarray(table.column("status").to_pylist()) == "error")
    assert set(errors.column("uri").to_pylist()) == set(broken)
    for name in ("flux1d", "mel", "mfcc", "lfcc"):
        assert errors.column(name).null_count == 3
        assert table.column(name).null_count == 3
    ok_row = table.filter(np.asarray(table.column("status").to_pylist()) == "ok").slice(0, 1)
    lfcc = ok_row.column("lfcc").combine_chunks().to_numpy_ndarray()
    assert lfcc.shape == (1, 30, 54)
    with pytest.raises(SystemExit, match="--overwrite"):
        build_features.main(argv)
    assert build_features.main([*argv, "--overwrite", "--limit", "10"]) == 0
    assert pq.read_table(out).num_rows == 10


def test_plot_modalities_writes_a_sheet(damaged_release, tmp_path, capsys):
    from PIL import Image

    from raysurvey.cli import main

    manifest, _ = damaged_release
    out = tmp_path / "sheet.png"
    argv = ["plot-modalities", manifest, "--out", str(out), "--n", "3"]
    assert (
        main([*argv, "--modalities", "flux1d,map2d,mel", "--option", "map2d.variant=normalised"])
        == 0
    )
    assert f"wrote {out}" in capsys.readouterr().out
    width, height = Image.open(out).size
    assert width == height > 400  # 3 rows x 3 columns of square panels
