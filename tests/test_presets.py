"""Training presets (the 2D papers' tasks), class weights, and the per-S/N comparison
table of several evaluated models."""

from __future__ import annotations

import json
import math

import pytest

from raysurvey.modalities.stripes import options_for_width
from raysurvey.train.presets import DRCNET_SNR_BINS, PRESETS, get_preset, weight_vector
from raysurvey.train.snr_compare import CompareError, compare_snr


def test_2d_presets_carry_their_papers_tasks():
    macnet, drcnet = get_preset("macnet"), get_preset("drcnet")
    for p in (macnet, drcnet):  # MAC-Net Table 3 / DRC-Net Table 2
        assert (p.optimizer, p.lr, p.batch_size, p.epochs, p.patience) == (
            "adagrad", 1e-3, 4, 300, 50
        )  # fmt: skip
    assert (macnet.model, macnet.labels, macnet.min_snr) == ("macnet", "class3", None)
    assert macnet.class_weights == {"GALAXY": 1.0, "QSO": 3.0, "STAR": 1.0}
    assert macnet.recalibrate_bn and not drcnet.recalibrate_bn
    assert (drcnet.model, drcnet.labels, drcnet.min_snr, drcnet.snr_column) == (
        "drcnet", "fgk", 30.0, "snr_r"
    )  # fmt: skip
    assert drcnet.snr_bins == DRCNET_SNR_BINS == (0.0, 10.0, 20.0, 30.0, math.inf)
    assert PRESETS["audio_fusion"].labels is None and PRESETS["audio_fusion"].class_weights == {}


def test_class_weights_in_label_order_and_refusals():
    assert weight_vector({"GALAXY": 1, "QSO": 3, "STAR": 1}, ["STAR", "GALAXY", "QSO"]) == (
        1.0, 1.0, 3.0
    )  # fmt: skip
    assert weight_vector({"QSO": 2}, ["STAR", "GALAXY", "QSO"]) == (1.0, 1.0, 2.0)
    assert weight_vector({}, ["STAR"]) is None
    assert weight_vector({"STAR": 1.0}, ["STAR", "QSO"]) is None  # all ones: plain loss
    with pytest.raises(ValueError, match=r"unknown labels \['QS0'\]"):
        weight_vector({"QS0": 3}, ["STAR", "GALAXY", "QSO"])
    with pytest.raises(ValueError, match="must be > 0"):
        weight_vector({"QSO": 0}, ["STAR", "GALAXY", "QSO"])


def test_stripes_options_follow_the_model_width():
    assert options_for_width(2000) == {"variant": "macnet"}
    assert options_for_width(3000) == {"variant": "drcnet"}
    assert options_for_width(200) == {"blue": [1900, 2100], "red": [2400, 2600]}


def report(tmp_path, name, rows, accuracy, column="snr_r"):
    d = tmp_path / name
    d.mkdir()
    bins = [{"snr_lo": lo, "snr_hi": hi, "n": n, "accuracy": a} for lo, hi, n, a in rows]
    body = {"accuracy": accuracy, "n": sum(r[2] for r in rows), "snr_column": column}
    (d / "metrics.json").write_text(json.dumps(body | {"accuracy_by_snr": bins}))
    return str(d)


def test_compare_snr_puts_models_side_by_side(tmp_path):
    inf = math.inf
    drc = report(tmp_path, "drc", [(0, 10, 4, 0.5), (10, 30, 10, 0.8), (30, inf, 6, 1.0)], 0.8)
    rc = report(tmp_path, "rc", [(0, 10, 4, 0.25), (10, 30, 10, 0.7), (30, inf, 6, None)], 0.5)
    rows = compare_snr({"DRC-Net": drc, "RC-Net": rc}, str(tmp_path / "out"))
    assert [r["bin"] for r in rows] == ["< 10", "10-30", "> 30", "all"]
    assert [r["DRC-Net_accuracy"] for r in rows] == [0.5, 0.8, 1.0, 0.8]
    assert [r["RC-Net_n"] for r in rows] == [4, 10, 6, 20]
    md = (tmp_path / "out" / "snr_comparison.md").read_text().splitlines()
    assert md[0] == "| S/N (snr_r) | DRC-Net acc. (%) | n | RC-Net acc. (%) | n |"
    assert md[2] == "| < 10 | 50.0 | 4 | 25.0 | 4 |"
    assert md[4] == "| > 30 | 100.0 | 6 |  | 6 |"  # an empty accuracy stays empty
    png = (tmp_path / "out" / "snr_comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    other = report(tmp_path, "other", [(0, 10, 4, 0.5), (10, inf, 16, 0.9)], 0.8)
    with pytest.raises(CompareError, match="other S/N bins"):
        compare_snr({"DRC-Net": drc, "x": other}, str(tmp_path / "out2"))
    with pytest.raises(CompareError, match="no evaluation report"):
        compare_snr({"missing": str(tmp_path / "nope")}, str(tmp_path / "out3"))


def test_compare_snr_command(tmp_path, capsys):
    from raysurvey.cli import main

    inf = math.inf
    a = report(tmp_path, "a", [(0, 10, 2, 0.5), (10, inf, 2, 1.0)], 0.75)
    b = report(tmp_path, "b", [(0, 10, 2, 0.0), (10, inf, 2, 0.5)], 0.25)
    assert main(["compare-snr", f"DRC-Net={a}", b, "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "| S/N (snr_r) | DRC-Net acc. (%) | n | b acc. (%) | n |"
    assert printed[-1] == "| all | 75.0 | 4 | 25.0 | 4 |"
    assert main(["compare-snr", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "no evaluation report" in capsys.readouterr().err
