"""The 2D presets end to end: a release with stripes and cutouts, ``--preset macnet`` and
``--preset drcnet`` through Ray Train (jobs/train.py), evaluation per S/N bin, and the
pipeline's handling of a spectrum whose 2D product is damaged or missing."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysurvey.data.decode import DecodeOptions
from raysurvey.data.pipeline import column_numpy, decode_table
from raysurvey.models.bundle import load_bundle
from raysurvey.train.evaluate import evaluate

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def load_job(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def release_2d(tmp_path_factory, templates_dir) -> str:
    """50 spectra (F, G, K stars, galaxies, QSOs) with stripes and cutouts; S/N_r spread
    around 30 so the drcnet cut keeps some and the S/N bins all fill."""
    from raysurvey.synth import SynthConfig, write_release

    out = tmp_path_factory.mktemp("release-2d")
    config = SynthConfig(
        n=50,
        out=str(out),
        templates=templates_dir,
        survey="lamost",
        classes=("F", "G", "K", "GALAXY", "QSO"),
        mix="balanced",
        seed=11,
        snr_median=25.0,
        snr_sigma=0.9,
        snr_min=4.0,
        label_noise=0.0,
        with_2d=True,
        with_photometry=True,
    )
    return write_release(config, progress=False)


def train(manifest, tmp_path, name, *extra) -> dict:
    argv = [
        "--manifest", manifest, "--storage", str(tmp_path / "runs"), "--name", name,
        "--bundle-out", str(tmp_path / "bundles" / name), "--epochs", "2",
        "--batch-size", "8", "--num-workers", "1", "--cpus-per-worker", "0.5", *extra,
    ]  # fmt: skip
    assert load_job("train").main(argv) == 0
    return json.loads((tmp_path / "runs" / name / "summary.json").read_text())


def test_macnet_preset_trains_class3_with_weights_and_evaluates(release_2d, tmp_path, ray_cluster):
    summary = train(release_2d, tmp_path, "macnet", "--preset", "macnet", "--model", "macnet_tiny")
    assert summary["label_names"] == ["STAR", "GALAXY", "QSO"]
    assert summary["last"]["epoch"] == 2 and summary["best"]["val_n"] > 0
    assert set(summary["counts"]["train"]) == {"STAR", "GALAXY", "QSO"}
    bundle = load_bundle(summary["bundle"]["uri"])
    assert bundle.metadata["class_weights"] == {"STAR": 1.0, "GALAXY": 1.0, "QSO": 3.0}
    assert bundle.metadata["label_set"] == "class3" and bundle.metadata["preset"] == "macnet"
    assert bundle.metadata["recalibrate_bn"] is True  # dropout before BatchNorm
    assert bundle.modalities == {"stripes": {"variant": "macnet"}, "photometry": {}}
    result = evaluate(summary["bundle"]["uri"], release_2d, str(tmp_path / "eval"), split="all")
    assert result["n_evaluated"] == result["n_rows"] == 50 and result["n_unreadable"] == 0
    assert sum(r["n"] for r in result["accuracy_by_snr"]) == 50
    assert 0.0 <= result["accuracy"] <= 1.0
    assert (tmp_path / "eval" / "accuracy_by_snr.png").exists()


def test_drcnet_preset_trains_fgk_above_snr_30_and_scores_every_bin(
    release_2d, tmp_path, ray_cluster
):
    summary = train(release_2d, tmp_path, "drcnet", "--preset", "drcnet", "--model", "drcnet_tiny")
    manifest = pq.read_table(release_2d).to_pydict()
    fgk_bright = sum(
        1
        for c, s, snr in zip(
            manifest["class"], manifest["subclass"], manifest["snr_r"], strict=True
        )
        if c == "STAR" and s[0] in "FGK" and snr > 30
    )
    assert summary["label_names"] == ["F", "G", "K"]
    assert sum(sum(split.values()) for split in summary["counts"].values()) == fgk_bright
    assert summary["excluded"] == 50 - fgk_bright  # galaxies, QSOs and S/N_r <= 30
    bundle = load_bundle(summary["bundle"]["uri"])
    assert bundle.metadata["snr_column"] == "snr_r" and bundle.metadata["min_snr"] == 30.0
    assert bundle.metadata["snr_bins"] == [0.0, 10.0, 20.0, 30.0, math.inf]
    assert bundle.modalities == {"stripes": {"variant": "drcnet"}}
    # tested on every S/N bin: every F/G/K star, the faint ones it never trained on
    result = evaluate(
        summary["bundle"]["uri"], release_2d, str(tmp_path / "eval"), split="all", min_snr=0
    )
    fgk = sum(1 for c, s in zip(manifest["class"], manifest["subclass"], strict=True)
              if c == "STAR" and s[0] in "FGK")  # fmt: skip
    assert result["snr_column"] == "snr_r" and result["n_evaluated"] == fgk > fgk_bright
    bins = [(r["snr_lo"], r["snr_hi"]) for r in result["accuracy_by_snr"]]
    assert bins == [(0, 10), (10, 20), (20, 30), (30, math.inf)]
    assert sum(r["n"] for r in result["accuracy_by_snr"]) == fgk
    assert sum(r["n"] for r in result["accuracy_by_snr"][:3]) == fgk - fgk_bright
    csv = (tmp_path / "eval" / "accuracy_by_snr.csv").read_text().splitlines()
    assert csv[0] == "snr_lo,snr_hi,n,accuracy" and len(csv) == 5
    # held out: every F/G/K star the model never trained on (faint ones included)
    heldout = evaluate(
        summary["bundle"]["uri"], release_2d, str(tmp_path / "held"), split="heldout", min_snr=0
    )
    assert heldout["n_evaluated"] == fgk - sum(summary["counts"]["train"].values())


def test_a_damaged_or_missing_product_makes_an_error_row(release_2d, tmp_path):
    table = pq.read_table(release_2d).slice(0, 4)
    stripes = table.column("stripes_uri").to_pylist()
    broken = tmp_path / "broken-stripes.fits"
    broken.write_bytes(Path(stripes[1]).read_bytes()[:5000])
    cutouts = table.column("cutout_uri").to_pylist()
    table = table.set_column(
        table.column_names.index("stripes_uri"),
        "stripes_uri",
        pa.array([stripes[0], str(broken), stripes[2], stripes[3]]),
    )
    table = table.set_column(
        table.column_names.index("cutout_uri"),
        "cutout_uri",
        pa.array([cutouts[0], cutouts[1], None, cutouts[3]]),
    )
    out = decode_table(table, DecodeOptions(products=("stripes", "cutout")))
    status = column_numpy(out, "status").tolist()
    error = column_numpy(out, "error").tolist()
    assert out.num_rows == 4 and status == ["ok", "error", "error", "ok"]
    assert error[1].startswith("truncated:") and str(broken) in error[1]
    assert error[2].startswith("missing_product:")
    blue = column_numpy(out, "stripe_blue")
    gri = column_numpy(out, "cutout_gri")
    assert blue.shape == (4, 15, 4000) and gri.shape == (4, 3, 64, 64)
    assert np.isfinite(blue[0]).all() and np.isnan(blue[1]).all()
    assert np.isfinite(column_numpy(out, "flux")[1]).any()  # its 1D spectrum was fine
