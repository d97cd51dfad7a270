"""Calibration, OOD score and their storage in bundles, on hand-made numbers (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from raysurvey.calibration import (
    auroc,
    choose_scaling,
    energy_score,
    expected_calibration_error,
    fit_calibration,
    fit_gaussians,
    fit_low_snr,
    fit_temperature,
    ledoit_wolf,
    mahalanobis_score,
    nll,
    reliability_table,
    scale_logits,
    score_ood,
    softmax,
)
from raysurvey.infer.catalog import catalog_schema, plan_bundles
from raysurvey.models import create_model
from raysurvey.models.bundle import (
    BundleError,
    load_bundle,
    read_manifest,
    save_bundle,
    save_calibration,
)

TINY = dict(channels=(4,) * 8, hidden_dim=16, embed_dim=8, attention="se")


def sampled_labels(true_logits: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn from softmax(true_logits): these logits are calibrated by design."""
    rng = np.random.default_rng(seed)
    p = softmax(true_logits)
    u = rng.random(len(p))[:, None]
    return (u > p.cumsum(axis=1)).sum(axis=1)


def test_temperature_is_recovered_from_overconfident_logits():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2.0, size=(10000, 3))
    labels = sampled_labels(true, 1)
    for t_true in (0.5, 2.5):
        t = fit_temperature(true * t_true, labels)  # the model's logits are T times too big
        assert t == pytest.approx(t_true, rel=0.04)
        assert nll(true * t_true / t, labels) <= nll(true * t_true, labels)
    scaling, measured = choose_scaling(true * 2.5, labels)
    # one number explains these logits: vector scaling must not be kept
    assert scaling["method"] == "temperature" and measured["chosen"] == "temperature"
    assert scaling["temperature"] == pytest.approx(2.5, rel=0.04)
    calibrated = softmax(scale_logits(true * 2.5, scaling))
    assert expected_calibration_error(calibrated, labels) < 0.01
    assert expected_calibration_error(softmax(true * 2.5), labels) > 0.05


def test_vector_scaling_is_kept_only_when_it_helps():
    rng = np.random.default_rng(2)
    true = rng.normal(0, 1.5, size=(6000, 3))
    labels = sampled_labels(true, 3)
    biased = true * np.array([1.0, 3.0, 0.5]) - np.array([0.0, 2.0, -1.0])  # per-class miscal.
    scaling, measured = choose_scaling(biased, labels)
    assert scaling["method"] == "vector"
    assert measured["vector"]["cv_nll"] < measured["temperature"]["cv_nll"]
    np.testing.assert_allclose(scaling["scale"], [1.0, 1 / 3.0, 2.0], rtol=0.15, atol=0.1)


def test_ece_on_a_hand_computed_example():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.62, 0.38], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins of 1/15: 0.95 in (14/15, 1] (2 rows, accuracy 0.5), 0.62 in (9/15, 10/15]
    # (accuracy 1), 0.7 in (10/15, 11/15] (accuracy 1)
    expected = 2 / 4 * abs(0.5 - 0.95) + 1 / 4 * abs(1 - 0.62) + 1 / 4 * abs(1 - 0.7)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    assert expected == pytest.approx(0.395)
    table = reliability_table(probs, labels)
    assert len(table) == 15 and [r["n"] for r in table if r["n"]] == [1, 1, 2]
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_mahalanobis_and_energy_scores():
    rng = np.random.default_rng(4)
    means = np.array([[0.0] * 5, [6.0] * 5])
    labels = rng.integers(0, 2, 4000)
    feats = means[labels] + rng.normal(0, 1, (4000, 5))
    mu, precision = fit_gaussians(feats, labels, n_classes=3)  # class 2 has no rows
    assert np.isnan(mu[2]).all()
    np.testing.assert_allclose(mu[:2], means, atol=0.1)
    np.testing.assert_allclose(np.linalg.inv(precision), np.eye(5), atol=0.1)
    near = mahalanobis_score(np.array([[0.0] * 5, [6.0] * 5]), mu, precision)
    far = mahalanobis_score(np.array([[3.0] * 5, [-10.0] * 5]), mu, precision)
    np.testing.assert_allclose(near, 0.0, atol=0.1)
    # (3,...,3) is 3 * sqrt(5) from both means: score sqrt(45 / 5) = 3
    assert far[0] == pytest.approx(3.0, rel=0.05) and far[1] > 9
    cov, shrink = ledoit_wolf(rng.normal(0, 1, (20, 50)))  # more dimensions than rows
    assert 0 < shrink <= 1 and np.linalg.eigvalsh(cov).min() > 0
    assert energy_score(np.array([[10.0, 0.0, 0.0]]))[0] < energy_score(np.zeros((1, 3)))[0]
    assert auroc([3, 4, 5], [0, 1, 2]) == 1.0 and auroc([1, 2], [1, 2]) == 0.5
    assert auroc([0], [1, 2]) == 0.0


def test_fit_calibration_sets_thresholds_for_the_stated_rates():
    rng = np.random.default_rng(5)
    n = 2000
    labels = rng.integers(0, 3, n)
    feats = np.eye(3)[labels] * 4 + rng.normal(0, 1, (n, 3))
    logits = feats * 2.0  # overconfident
    cal, tensors = fit_calibration(
        logits[:1000], labels[:1000], feats[:1000], feats[1000:], labels[1000:], 3,
        low_confidence_rate=0.05, ood_rate=0.02, ood_method="mahalanobis", flag_rate=None,
    )  # fmt: skip
    v = cal["validation"]
    assert cal["ood"]["method"] == "mahalanobis" and set(tensors) == {"ood_means", "ood_precision"}
    assert v["ece_after"] < v["ece_before"] and v["nll_after"] < v["nll_before"]
    probs = softmax(scale_logits(logits[:1000], cal["probabilities"]))
    correct = probs.argmax(1) == labels[:1000]
    flagged = probs.max(1) < cal["thresholds"]["low_confidence"]
    assert (flagged & correct).sum() / correct.sum() == pytest.approx(0.05, abs=0.01)
    assert v["flagged_ood"] == pytest.approx(0.02, abs=0.005)
    combined, _ = fit_calibration(
        logits[:1000], labels[:1000], feats[:1000], feats[1000:], labels[1000:], 3,
        ood_rate=0.04, mahalanobis_rate=0.01, flag_rate=None,
    )  # fmt: skip
    assert combined["ood"]["method"] == "combined" and combined["thresholds"]["ood"] == 1.0
    val_energy = energy_score(logits[:1000])
    median, threshold = combined["ood"]["scale"]["energy"]
    assert median == pytest.approx(np.median(val_energy))
    assert (val_energy > threshold).mean() == pytest.approx(0.04, abs=0.002)
    # each part flags its own share, the union at most both
    assert 0.04 <= combined["validation"]["flagged_ood"] <= 0.05 + 1e-9
    # a joint budget: both rates scaled by one factor until the union on correct rows fits
    joint, joint_tensors = fit_calibration(
        logits[:1000], labels[:1000], feats[:1000], feats[1000:], labels[1000:], 3,
        low_confidence_rate=0.05, ood_rate=0.04, flag_rate=0.03,
    )  # fmt: skip
    rates = joint["false_flag_rate"]
    assert rates["union"] == 0.03 and rates["low_confidence"] < 0.05
    assert rates["low_confidence"] / rates["ood"] == pytest.approx(0.05 / 0.04)
    assert 0.025 <= joint["validation"]["flagged_correct_union"] <= 0.03
    joint_conf = softmax(scale_logits(logits[:1000], joint["probabilities"])).max(1)
    flags = (joint_conf < joint["thresholds"]["low_confidence"]) | (
        score_ood(joint, joint_tensors, logits[:1000], feats[:1000]) > joint["thresholds"]["ood"]
    )
    assert flags[correct].mean() == pytest.approx(joint["validation"]["flagged_correct_union"])
    loose, _ = fit_calibration(  # a budget the two rates already meet leaves them alone
        logits[:1000], labels[:1000], feats[:1000], feats[1000:], labels[1000:], 3,
        low_confidence_rate=0.01, ood_rate=0.01, flag_rate=0.5,
    )  # fmt: skip
    assert loose["false_flag_rate"]["low_confidence"] == 0.01
    energy, none = fit_calibration(logits, labels, None, None, None, 3)
    assert energy["ood"]["method"] == "energy" and none == {}
    with pytest.raises(ValueError, match="too few"):
        fit_calibration(logits[:5], labels[:5], None, None, None, 3)


@pytest.fixture
def tiny_bundle(tmp_path) -> str:
    torch.manual_seed(0)
    model = create_model("spec_cnn", num_classes=3, **TINY)
    path = str(tmp_path / "b")
    save_bundle(model, path, labels=["STAR", "GALAXY", "QSO"], metadata={"label_set": "class3"})
    return path


def test_calibration_round_trips_through_the_bundle(tiny_bundle, tmp_path):
    before = read_manifest(tiny_bundle)
    assert load_bundle(tiny_bundle).calibration is None
    cal = {
        "probabilities": {"method": "temperature", "temperature": 1.7},
        "ood": {"method": "mahalanobis"},
        "thresholds": {"low_confidence": 0.6, "ood": 2.5},
    }
    tensors = {"ood_means": np.ones((3, 8)), "ood_precision": np.eye(8)}
    copy = str(tmp_path / "copy")
    version = save_calibration(tiny_bundle, cal, tensors, out=copy)
    assert read_manifest(tiny_bundle)["version"] == before["version"]  # original untouched
    assert version != before["version"]  # a recalibrated bundle is a new version
    loaded = load_bundle(copy)
    assert loaded.version == version and loaded.calibration["thresholds"]["ood"] == 2.5
    np.testing.assert_array_equal(loaded.calibration_tensors["ood_precision"], np.eye(8))
    assert loaded.calibration_tensors["ood_means"].dtype == np.float32
    # in place, twice: the same content gives the same version
    assert save_calibration(tiny_bundle, cal, tensors) == version
    (tmp_path / "copy" / "calibration.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(copy)


def test_format_1_bundles_still_load(tiny_bundle):
    path = f"{tiny_bundle}/bundle.json"
    manifest = json.load(open(path))
    manifest["format_version"] = 1
    json.dump(manifest, open(path, "w"))
    loaded = load_bundle(tiny_bundle)
    assert loaded.calibration is None and loaded.calibration_tensors == {}
    manifest["format_version"] = 3
    json.dump(manifest, open(path, "w"))
    with pytest.raises(BundleError, match="newer than this raysurvey"):
        load_bundle(tiny_bundle)


def test_catalog_columns_and_metadata(tiny_bundle):
    save_calibration(
        tiny_bundle,
        {
            "probabilities": {"method": "temperature", "temperature": 2.0},
            "ood": {"method": "energy"},
            "thresholds": {"low_confidence": 0.5, "ood": -3.0},
        },
    )
    roles = plan_bundles([(tiny_bundle, read_manifest(tiny_bundle))])
    schema = catalog_schema(roles)
    assert schema.field("ood_score").type == pa.float32()
    assert schema.field("warning").type == pa.int64()
    assert schema.field("z_pred_err").type == pa.float32()
    assert schema.field("confidence").type == pa.float32()
    assert roles[0].calibration["ood_method"] == "energy"
    assert roles[0].calibration["thresholds"] == {"low_confidence": 0.5, "ood": -3.0}


def test_fit_low_snr_on_hand_made_rows():
    """The threshold is the highest S/N whose fainter rows (>= 20) are >= 20 % wrong."""
    snr = np.arange(1.0, 101.0)
    correct = snr > 10  # the 10 faintest rows are wrong
    # fainter than 50: 10 of 50 wrong (20 %); fainter than 51: 10 of 51 (19.6 %)
    assert fit_low_snr(snr, correct) == 50.5
    assert fit_low_snr(snr[::-1], correct[::-1]) == 50.5  # order does not matter
    # stricter: 10 of 25 rows are 40 % wrong, 10 of 26 are 38.5 %
    assert fit_low_snr(snr, correct, max_error=0.4) == 25.5
    # too few rows to judge: the first 20 rows are only 10 / 20 = 50 % wrong
    assert fit_low_snr(snr, correct, max_error=0.6) == 1.0
    # never wrong: the faintest validated S/N; NaN S/N ignored; nothing: 0
    assert fit_low_snr(np.r_[np.nan, snr], np.ones(101, bool)) == 1.0
    assert fit_low_snr(np.array([]), np.array([], bool)) == 0.0


def test_calibrate_bundle_cli_on_two_manifests(
    tiny_bundle, templates_dir, ray_cluster, tmp_path, capsys
):
    """A bundle trained on two releases is recalibrated on both validation splits."""
    from raysurvey.cli import main
    from raysurvey.synth import SynthConfig, write_release
    from raysurvey.train.data import DataSpec, training_tables

    manifests = [
        write_release(
            SynthConfig(n=160, out=str(tmp_path / f"r{seed}"), templates=templates_dir, seed=seed),
            progress=False,
        )
        for seed in (3, 4)
    ]
    out = str(tmp_path / "calibrated")
    argv = ["calibrate-bundle", tiny_bundle, "--out", out, "--flag-rate", "0.05"]
    assert main([*argv, "--manifest", manifests[0], "--manifest", manifests[1]]) == 0
    cal = read_manifest(out)["calibration"]
    assert cal["fitted_on"]["manifest"] == manifests
    both = training_tables(DataSpec(tuple(manifests), labels="class3", split_seed=0))
    assert cal["validation"]["n"] == both.splits["val"].num_rows
    assert cal["validation"]["flagged_correct_union"] <= 0.05
    assert cal["false_flag_rate"]["union"] == 0.05
    assert set(cal["thresholds"]) == {"low_confidence", "ood", "low_snr"}
    assert load_bundle(out).version != read_manifest(tiny_bundle)["version"]
    missing = str(tmp_path / "nope.parquet")
    assert main(["calibrate-bundle", tiny_bundle, "--manifest", missing]) == 2
    assert f"not found: {missing}" in capsys.readouterr().err
