"""The papers' metrics on hand-computed cases, splits and balancing (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from raysurvey.train import (
    accuracy_by_snr,
    assign_splits,
    balance_by_replication,
    catastrophic_rate,
    classification_metrics,
    confusion_matrix,
    regression_metrics,
)


def test_confusion_matrix_counts_true_by_predicted():
    cm = confusion_matrix([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 2, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_matrix([0, 3], [0, 0], 3)


def test_classification_metrics_by_hand():
    # true A: 3 (2 right, 1 -> B); true B: 2 (1 right, 1 -> A); true C: 1 (-> B)
    cm = np.array([[2, 1, 0], [1, 1, 0], [0, 1, 0]])
    m = classification_metrics(cm, ["A", "B", "C"])
    assert m["accuracy"] == pytest.approx(3 / 6)
    a, b, c = (m["per_class"][k] for k in "ABC")
    assert (a["precision"], a["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b["precision"], b["recall"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert b["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
    assert m["confusion_matrix"] == cm.tolist() and m["n"] == 6


def test_regression_metrics_by_hand():
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    # SS_res = 1, SS_tot = 2 -> R^2 = 0.5; RMSE = sqrt(1/3)
    assert m["r2"] == [pytest.approx(0.5)]
    assert m["rmse"] == [pytest.approx(np.sqrt(1 / 3))]


def test_catastrophic_rate_uses_the_class_thresholds():
    c = 299_792.458
    z = np.array([0.0, 0.0, 1.0, 1.0])
    dz = np.array([1500 / c, 900 / c, 2 * 2500 / c, 2 * 3500 / c])  # c dz / (1 + z) in km/s
    classes = ["GALAXY", "STAR", "QSO", "QSO"]
    # 1500 > 1000 fails; 900 ok; 2500 < 3000 ok for a QSO; 3500 fails
    assert catastrophic_rate(z, z + dz, classes) == pytest.approx(0.5)


def test_accuracy_by_snr_bins():
    rows = accuracy_by_snr([0, 1, 1, 0], [0, 0, 1, 0], [3.0, 4.0, 12.0, 60.0], bins=[0, 5, 20, 100])
    assert [(r["n"], r["accuracy"]) for r in rows] == [(2, 0.5), (1, 1.0), (1, 1.0)]
    assert accuracy_by_snr([0], [0], [1.0], bins=[5, 10])[0]["accuracy"] is None


def test_splits_are_deterministic_and_8_1_1():
    ids = [f"lamost:{i}" for i in range(20000)]
    a = assign_splits(ids, seed=0)
    assert (a == assign_splits(ids, seed=0)).all()
    fractions = [np.mean(a == s) for s in ("train", "val", "test")]
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
    b = assign_splits(ids, seed=1)
    assert 0.2 < np.mean(a != b) < 0.5  # another seed, another split
    # an id keeps its split when the release grows
    assert (assign_splits(ids[:100], seed=0) == a[:100]).all()


def test_balancing_replicates_minorities_only():
    labels = np.array(["A"] * 5 + ["B"] * 2 + ["C"] * 12)
    rows = balance_by_replication(labels, target=10, seed=0)
    counts = {k: int((labels[rows] == k).sum()) for k in "ABC"}
    assert counts == {"A": 10, "B": 10, "C": 12}
    assert np.bincount(rows[labels[rows] == "A"]).tolist() == [2, 2, 2, 2, 2]
