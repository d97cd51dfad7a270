"""The papers' metrics: confusion matrix, accuracy, macro-F1 and per-class precision /
recall / F1 (audio-fusion eqs. 6-9), regression R^2 and RMSE, Spectromer's redshift
catastrophic-failure rate, and accuracy per S/N bin (DRC-Net). Pure numpy, so workers
can all-reduce a confusion matrix and everything else follows from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

C_KM_S = 299_792.458
#: Spectromer: a redshift fails catastrophically when c |dz| / (1 + z) exceeds this.
CATASTROPHIC_KM_S = {"STAR": 1000.0, "GALAXY": 1000.0, "QSO": 3000.0}
#: DRC-Net style S/N bins for accuracy per S/N.
SNR_BINS = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, np.inf)


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class] (int64)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if y_true.size and (
        min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes
    ):
        raise ValueError(f"class indices must be in [0, {n_classes})")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def classification_metrics(cm: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support from a confusion
    matrix. A class never predicted has precision 0; never present, recall 0 (and it
    still counts in the macro average, as in sklearn with zero_division=0)."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "labels": list(labels),
        "n": int(total),
    }


def regression_metrics(y_true, y_pred) -> dict:
    """R^2 (1 - SS_res / SS_tot) and RMSE, per target column."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    residual = ((y_true - y_pred) ** 2).sum(axis=0)
    spread = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(spread > 0, 1.0 - residual / spread, np.nan)
    rmse = np.sqrt(residual / max(len(y_true), 1))
    return {"r2": r2.tolist(), "rmse": rmse.tolist()}


def catastrophic_rate(z_true, z_pred, classes: Sequence[str]) -> float:
    """Fraction with c |dz| / (1 + z) above 1000 km/s (stars, galaxies) or 3000 km/s
    (QSOs), as Spectromer defines redshift failures."""
    z_true = np.asarray(z_true, dtype=np.float64)
    z_pred = np.asarray(z_pred, dtype=np.float64)
    if not len(z_true):
        return 0.0
    limit = np.array([CATASTROPHIC_KM_S.get(str(c).upper(), 1000.0) for c in classes])
    velocity = C_KM_S * np.abs(z_pred - z_true) / (1.0 + z_true)
    return float(np.mean(velocity > limit))


def accuracy_by_snr(y_true, y_pred, snr, bins: Sequence[float] = SNR_BINS) -> list[dict]:
    """Accuracy per S/N bin [lo, hi): rows of lo, hi, n, accuracy (None when empty)."""
    y_true, y_pred, snr = (np.asarray(a) for a in (y_true, y_pred, snr))
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        inside = (snr >= lo) & (snr < hi)
        n = int(inside.sum())
        accuracy = float((y_true[inside] == y_pred[inside]).mean()) if n else None
        rows.append({"snr_lo": float(lo), "snr_hi": float(hi), "n": n, "accuracy": accuracy})
    return rows
