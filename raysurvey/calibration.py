"""Confidence you can trust: calibrated probabilities, an out-of-distribution score and
the thresholds of the catalog's ``warning`` bits, fitted on a bundle's validation split.

The pieces (pure numpy / torch, no Ray):

- ``fit_temperature`` / ``fit_vector_scaling``: temperature scaling (one number T,
  probabilities ``softmax(z / T)``) and vector scaling (``softmax(w * z + b)``), both by
  minimising the negative log-likelihood of held-out logits. ``choose_scaling`` keeps
  vector scaling only when it beats temperature scaling by a clear margin in a
  two-fold cross-validation on the fitting rows (it has 2C parameters instead of 1).
- ``expected_calibration_error``: ECE with equal-width confidence bins (15 by default).
- ``fit_gaussians`` / ``mahalanobis_score``: class-conditional Gaussians with one shared
  (Ledoit-Wolf shrunk) covariance on the model's penultimate features, and the distance
  to the nearest class mean; ``energy_score`` the free energy ``-logsumexp(z)``. The
  catalog's ``ood_score`` (higher = further from the training data) is one of them or,
  by default, ``combined``: each scaled so that 0 is the validation median and 1 its
  flag threshold, and the larger taken (threshold 1). docs/catalog.md says why.
- ``fit_calibration``: all of it from (train features, validation logits and features),
  with the LOW_CONFIDENCE and OUT_OF_DISTRIBUTION thresholds set for stated false-flag
  rates on the validation rows, and the LOW_SNR threshold where the validation error
  rate of the faintest rows reaches ``LOW_SNR_MAX_ERROR`` (``fit_low_snr``).
- ``calibrate_bundle``: streams a manifest's train / validation split through a
  bundle and stores the result in the bundle (``raysurvey calibrate-bundle``); training
  runs call it at bundle export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: Fewer validation rows than this cannot fit a calibration: the bundle stays uncalibrated.
MIN_CALIBRATION_ROWS = 10

#: Default false-flag rates on the validation split: LOW_CONFIDENCE is set on this
#: fraction of the correctly classified validation rows, OUT_OF_DISTRIBUTION on this
#: fraction of all validation rows.
LOW_CONFIDENCE_RATE = 0.03
OOD_RATE = 0.03
#: The most correctly classified validation rows that LOW_CONFIDENCE and
#: OUT_OF_DISTRIBUTION may flag together: users cut on ``warning = 0``, so the stated
#: false-flag rate is the union's. The two rates above are scaled down by one factor
#: until their union fits (each alone at 3 % flagged ~5 % together).
FLAG_RATE = 0.03
#: The Mahalanobis part of the "combined" score flags only this share of validation
#: rows: on real spectra the feature distance mostly measures how unlike the synthetic
#: training set they are, so it is kept for gross outliers (docs/catalog.md).
MAHALANOBIS_RATE = 0.005
#: LOW_SNR: below the fitted S/N the bundle's faintest validation rows are wrong at
#: least this often (the model's own noise limit), judged on at least
#: ``LOW_SNR_MIN_ROWS`` rows; with no such S/N, the faintest validated S/N (fainter
#: spectra than the bundle was ever checked on).
LOW_SNR_MAX_ERROR = 0.2
LOW_SNR_MIN_ROWS = 20
#: Confidence bins of the ECE (Guo et al. 2017 use 15).
ECE_BINS = 15
#: Vector scaling is kept only if its cross-validated NLL is this much (relative) lower.
VECTOR_MARGIN = 0.02
OOD_METHODS = ("combined", "energy", "mahalanobis")
#: Training rows whose features fit the Gaussians (a seeded sample when there are more).
MAX_TRAIN_ROWS = 4000


# -- probabilities ----------------------------------------------------------------------


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return float("nan")
    return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of ``softmax(logits / T)``.

    The NLL is convex in 1/T, hence unimodal in log T: a golden-section search over
    T in [0.01, 100] finds it to ~1e-6 relative.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("no rows to fit a temperature on")

    def loss(log_t: float) -> float:
        return nll(logits / math.exp(log_t), labels)

    lo, hi = math.log(0.01), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(100):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(math.exp((lo + hi) / 2))


def fit_vector_scaling(
    logits: np.ndarray, labels: np.ndarray, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class scale ``w`` and bias ``b`` minimising the NLL of ``softmax(w * z + b)``
    (a small L2 pull towards w = 1 / T, b = 0 keeps empty classes sane)."""
    import torch

    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    t0 = fit_temperature(logits, labels)
    w = torch.full((z.shape[1],), 1.0 / t0, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z * w + b, y)
        loss = loss + l2 * (((w - 1.0 / t0) ** 2).sum() + (b**2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def scale_logits(logits: np.ndarray, scaling: dict | None) -> np.ndarray:
    """Logits after the stored scaling (``None``: unchanged)."""
    z = np.asarray(logits, dtype=np.float64)
    if not scaling:
        return z
    if scaling["method"] == "temperature":
        return z / float(scaling["temperature"])
    if scaling["method"] == "vector":
        return z * np.asarray(scaling["scale"]) + np.asarray(scaling["bias"])
    raise ValueError(f"unknown calibration method {scaling['method']!r}")


def choose_scaling(
    logits: np.ndarray, labels: np.ndarray, margin: float = VECTOR_MARGIN, seed: int = 0
) -> tuple[dict, dict]:
    """Temperature or vector scaling, by two-fold cross-validated NLL on these rows.

    Returns (the scaling fitted on all rows, the measurement: cross-validated NLL and
    ECE of each method). Vector scaling is kept only when its NLL is ``margin``
    (relative) below temperature scaling's and its ECE is no worse.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(labels)) % 2
    cv = {"temperature": [np.zeros_like(logits), 0], "vector": [np.zeros_like(logits), 0]}
    for k in (0, 1):
        fit_rows, test_rows = fold != k, fold == k
        t = fit_temperature(logits[fit_rows], labels[fit_rows])
        cv["temperature"][0][test_rows] = logits[test_rows] / t
        w, b = fit_vector_scaling(logits[fit_rows], labels[fit_rows])
        cv["vector"][0][test_rows] = logits[test_rows] * w + b
    measured = {
        name: {
            "cv_nll": nll(z, labels),
            "cv_ece": expected_calibration_error(softmax(z), labels),
        }
        for name, (z, _) in cv.items()
    }
    t_m, v_m = measured["temperature"], measured["vector"]
    use_vector = (
        v_m["cv_nll"] < (1 - margin) * t_m["cv_nll"] and v_m["cv_ece"] <= t_m["cv_ece"] + 1e-9
    )
    measured["chosen"] = "vector" if use_vector else "temperature"
    if use_vector:
        w, b = fit_vector_scaling(logits, labels)
        return {"method": "vector", "scale": w.tolist(), "bias": b.tolist()}, measured
    return {"method": "temperature", "temperature": fit_temperature(logits, labels)}, measured


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """ECE: sum over equal-width confidence bins of |accuracy - mean confidence|, weighted
    by the bin's share of rows. A row's confidence is its max probability; bin k holds
    confidences in (k / n, (k + 1) / n] (the first bin also holds 0)."""
    table = reliability_table(probs, labels, n_bins)
    n = sum(row["n"] for row in table)
    if n == 0:
        return float("nan")
    return float(
        sum(row["n"] / n * abs(row["accuracy"] - row["confidence"]) for row in table if row["n"])
    )


def reliability_table(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Per confidence bin: its edges, row count, accuracy and mean confidence."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = probs.argmax(axis=1) == labels if len(probs) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    rows = []
    for k in range(n_bins):
        inside = which == k
        n = int(inside.sum())
        rows.append(
            {
                "lo": float(edges[k]),
                "hi": float(edges[k + 1]),
                "n": n,
                "accuracy": float(correct[inside].mean()) if n else float("nan"),
                "confidence": float(conf[inside].mean()) if n else float("nan"),
            }
        )
    return rows


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str, title=""):
    """Reliability diagram (accuracy against confidence per bin) of each named
    (probs, labels) pair, with the ECE in the legend; written as a PNG to ``path``."""
    import fsspec
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raysurvey.train.figures import save_png

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    for name, (probs, labels) in curves.items():
        table = [r for r in reliability_table(probs, labels) if r["n"]]
        ece = expected_calibration_error(probs, labels)
        ax.plot(
            [r["confidence"] for r in table],
            [r["accuracy"] for r in table],
            marker="o",
            label=f"{name} (ECE {100 * ece:.2f} %)",
        )
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1.02), ylim=(0, 1.02), title=title)
    ax.legend(loc="upper left", fontsize=8)
    fs, p = fsspec.core.url_to_fs(path)
    save_png(fig, fs, p)
    plt.close(fig)


# -- out-of-distribution score ------------------------------------------------------------


def ledoit_wolf(centered: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred rows, and the shrinkage used."""
    x = np.asarray(centered, dtype=np.float64)
    n, p = x.shape
    cov = x.T @ x / n
    mu = np.trace(cov) / p
    x2 = x**2
    beta_ = float((x2.T @ x2).sum())
    delta_ = float((cov**2).sum())
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * np.trace(cov) + p * mu**2) / p
    shrink = 0.0 if delta <= 0 else float(min(max(beta, 0.0), delta) / delta)
    return (1 - shrink) * cov + shrink * mu * np.eye(p), shrink


def fit_gaussians(
    features: np.ndarray, labels: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class means [C, D] (NaN for a class without rows) and the precision [D, D] of
    the shared, shrunk covariance of ``features`` around their class means."""
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(f) < 2:
        raise ValueError("need at least two rows to fit Gaussians")
    means = np.full((n_classes, f.shape[1]), np.nan)
    for c in range(n_classes):
        if (labels == c).any():
            means[c] = f[labels == c].mean(axis=0)
    cov, _ = ledoit_wolf(f - means[labels])
    precision = np.linalg.pinv(cov, hermitian=True)
    return means.astype(np.float32), precision.astype(np.float32)


def mahalanobis_score(features: np.ndarray, means: np.ndarray, precision: np.ndarray):
    """Distance to the nearest class mean, sqrt(min_c (f - mu_c)^T P (f - mu_c))
    divided by sqrt(D), so that training rows score about 1."""
    f = np.asarray(features, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    best = np.full(len(f), np.inf)
    for mu in means:
        if not np.isfinite(mu).all():
            continue
        d = f - mu
        best = np.minimum(best, ((d @ precision) * d).sum(axis=1))  # a BLAS product
    return np.sqrt(np.maximum(best, 0.0) / f.shape[1])


def energy_score(logits: np.ndarray) -> np.ndarray:
    """Free energy ``-logsumexp(z)`` of raw logits: higher = further (Liu et al. 2020)."""
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=1)
    return -(m + np.log(np.exp(z - m[:, None]).sum(axis=1)))


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random ``positive`` scores above a random ``negative``
    (ties count half); NaN when either is empty."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if not len(positive) or not len(negative):
        return float("nan")
    both = np.concatenate([positive, negative])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_values = both[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    r = ranks[: len(positive)].sum()
    return float((r - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


# -- what a bundle stores ---------------------------------------------------------------


def logits_and_features(model, inputs) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's logits and the penultimate features (the input of its ``head``;
    None for a model without one), for model tensors keyed by modality."""
    import torch

    from raysurvey.models import run_model

    inner = model.module if isinstance(getattr(model, "module", None), torch.nn.Module) else model
    inner = getattr(inner, "_orig_mod", inner)
    head = getattr(inner, "head", None)
    captured: dict[str, Any] = {}
    handle = None
    if isinstance(head, torch.nn.Module):
        handle = head.register_forward_hook(
            lambda module, args, out: captured.__setitem__("f", args[0].detach())
        )
    try:
        with torch.inference_mode():
            out = run_model(model, inputs)
    finally:
        if handle is not None:
            handle.remove()
    feats = captured.get("f")
    return (
        out.float().cpu().numpy(),
        feats.float().cpu().numpy() if feats is not None else None,
    )


def score_ood(
    calibration: dict | None,
    tensors: dict[str, np.ndarray],
    logits: np.ndarray,
    features: np.ndarray | None,
) -> np.ndarray | None:
    """A bundle's ``ood_score`` per row (None when it stores no OOD model)."""
    ood = (calibration or {}).get("ood")
    if not ood:
        return None
    if ood["method"] == "energy":
        return energy_score(logits)
    if features is None:
        raise ValueError("the bundle's OOD score needs the model's penultimate features")
    distance = mahalanobis_score(features, tensors["ood_means"], tensors["ood_precision"])
    if ood["method"] == "mahalanobis":
        return distance
    return combined_score(energy_score(logits), distance, ood["scale"])


def _scaled(values: np.ndarray, median: float, threshold: float) -> np.ndarray:
    return (np.asarray(values, dtype=np.float64) - median) / max(threshold - median, 1e-12)


def combined_score(energy: np.ndarray, distance: np.ndarray, scale: dict) -> np.ndarray:
    """max(energy, distance), each scaled to 0 at its validation median and 1 at its
    flag threshold (``scale``: {"energy": [median, threshold], "mahalanobis": [...]})."""
    return np.maximum(_scaled(energy, *scale["energy"]), _scaled(distance, *scale["mahalanobis"]))


def fit_low_snr(
    snr: np.ndarray,
    correct: np.ndarray,
    max_error: float = LOW_SNR_MAX_ERROR,
    min_rows: int = LOW_SNR_MIN_ROWS,
) -> float:
    """The S/N below which the bundle's validation rows are too often wrong.

    Rows are sorted by S/N; the threshold is the highest S/N such that the rows fainter
    than it (at least ``min_rows`` of them) are wrong at least ``max_error`` of the
    time, halfway to the next row's S/N. Where no such S/N exists, the faintest
    validated S/N: LOW_SNR then marks spectra fainter than any the bundle was checked on.
    """
    snr = np.asarray(snr, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    keep = np.isfinite(snr)
    snr, correct = snr[keep], correct[keep]
    if snr.size == 0:
        return 0.0
    order = np.argsort(snr, kind="stable")
    s, wrong = snr[order], ~correct[order]
    rate = np.cumsum(wrong) / np.arange(1, s.size + 1)
    hits = np.flatnonzero((rate >= max_error) & (np.arange(s.size) >= min_rows - 1))
    if hits.size == 0:
        return float(s[0])
    k = int(hits[-1])
    return float(s[k] if k + 1 == s.size else 0.5 * (s[k] + s[k + 1]))


def fit_calibration(
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    val_features: np.ndarray | None,
    train_features: np.ndarray | None,
    train_labels: np.ndarray | None,
    n_classes: int,
    *,
    ood_method: str = "combined",
    low_confidence_rate: float = LOW_CONFIDENCE_RATE,
    ood_rate: float = OOD_RATE,
    mahalanobis_rate: float = MAHALANOBIS_RATE,
    flag_rate: float | None = FLAG_RATE,
    val_snr: np.ndarray | None = None,
    low_snr_max_error: float = LOW_SNR_MAX_ERROR,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Scaling, OOD model and thresholds from held-out logits (and features).

    Returns the ``calibration`` section of bundle.json and the tensors stored beside it.
    ``low_confidence_rate``: the fraction of correctly classified validation rows that
    LOW_CONFIDENCE may flag; ``ood_rate``: the fraction of validation rows that
    OUT_OF_DISTRIBUTION may flag (for ``combined``: the energy part's;
    ``mahalanobis_rate`` the distance part's); ``flag_rate``: the most correct
    validation rows the two may flag together (both rates scaled by one factor until
    the union fits; None: no joint budget). ``val_snr``: the validation rows' S/N
    (the catalog's: the survey's ``snr_r``, else the grid S/N), for the LOW_SNR
    threshold (``fit_low_snr``); without it the catalog keeps the fixed default.
    """
    if ood_method not in OOD_METHODS:
        raise ValueError(f"ood_method must be one of {OOD_METHODS}, not {ood_method!r}")
    val_logits = np.asarray(val_logits, dtype=np.float64)
    val_labels = np.asarray(val_labels, dtype=np.int64)
    if len(val_labels) < MIN_CALIBRATION_ROWS:
        raise ValueError(f"only {len(val_labels)} validation rows: too few to calibrate on")
    scaling, measured = choose_scaling(val_logits, val_labels)
    raw = softmax(val_logits)
    calibrated = softmax(scale_logits(val_logits, scaling))
    conf = calibrated.max(axis=1)
    correct = calibrated.argmax(axis=1) == val_labels

    tensors: dict[str, np.ndarray] = {}
    ood: dict[str, Any] = {"method": ood_method}
    if ood_method != "energy" and (val_features is None or train_features is None):
        ood_method = ood["method"] = "energy"  # a model without a head: logits only
    energy = energy_score(val_logits)
    distance = None
    if ood_method != "energy":
        means, precision = fit_gaussians(train_features, train_labels, n_classes)
        tensors = {"ood_means": means, "ood_precision": precision}
        distance = mahalanobis_score(val_features, means, precision)

    def fit_at(factor: float):
        """(low-confidence threshold, OOD scale, OOD threshold, validation OOD scores)
        with both false-flag rates multiplied by ``factor``."""
        rate = factor * low_confidence_rate
        low = float(np.quantile(conf[correct], rate)) if correct.any() else 0.0
        if ood_method == "combined":
            scale = {
                "energy": [
                    float(np.median(energy)),
                    float(np.quantile(energy, 1 - factor * ood_rate)),
                ],
                "mahalanobis": [
                    float(np.median(distance)),
                    float(np.quantile(distance, 1 - mahalanobis_rate)),
                ],
            }
            return low, scale, 1.0, combined_score(energy, distance, scale)
        scores = energy if ood_method == "energy" else distance
        return low, None, float(np.quantile(scores, 1 - factor * ood_rate)), scores

    def union(factor: float) -> float:
        low, _, threshold, scores = fit_at(factor)
        return float(((conf < low) | (scores > threshold))[correct].mean())

    factor = 1.0
    if flag_rate is not None and correct.any() and union(1.0) > flag_rate:
        lo, hi = 0.0, 1.0  # the union grows with the factor: bisect for the largest fit
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if union(mid) <= flag_rate else (lo, mid)
        factor = lo
    low_conf, scale, ood_threshold, val_ood = fit_at(factor)
    if scale is not None:
        ood["scale"] = scale
    rates = {
        "low_confidence": factor * low_confidence_rate,
        "ood": factor * ood_rate,
    }
    if flag_rate is not None:
        rates["union"] = flag_rate
    if ood_method == "combined":
        rates["ood_mahalanobis"] = mahalanobis_rate
    thresholds = {"low_confidence": low_conf, "ood": ood_threshold}
    if val_snr is not None:
        thresholds["low_snr"] = fit_low_snr(val_snr, correct, low_snr_max_error)
        rates["low_snr_max_error"] = low_snr_max_error
    calibration = {
        "probabilities": scaling,
        "ood": ood,
        "thresholds": thresholds,
        "false_flag_rate": rates,
        "validation": {
            "n": int(len(val_labels)),
            "accuracy": float(correct.mean()),
            "nll_before": nll(val_logits, val_labels),
            "nll_after": nll(scale_logits(val_logits, scaling), val_labels),
            "ece_before": expected_calibration_error(raw, val_labels),
            "ece_after": expected_calibration_error(calibrated, val_labels),
            "flagged_low_confidence": float((conf < low_conf).mean()),
            "flagged_ood": float((val_ood > ood_threshold).mean()),
            "flagged_correct_union": float(
                ((conf < low_conf) | (val_ood > ood_threshold))[correct].mean()
            )
            if correct.any()
            else 0.0,
            **(
                {"flagged_low_snr": float((np.asarray(val_snr) < thresholds["low_snr"]).mean())}
                if val_snr is not None
                else {}
            ),
            "scaling_cv": measured,
        },
    }
    if train_features is not None:
        calibration["ood"]["n_train"] = int(len(train_features))
        calibration["ood"]["feature_dim"] = int(train_features.shape[1])
    return calibration, tensors


# -- a bundle, end to end ---------------------------------------------------------------


def split_outputs(bundle, table, batch_size: int = 64):
    """(logits, features or None, integer labels, S/N) for the rows of ``table`` that
    decode. The S/N is the catalog's: the survey's ``snr_r`` where the row has one,
    else the grid S/N of the decode stage."""
    import torch

    from raysurvey.models import prepare_inputs
    from raysurvey.train.split_data import TRAIN_PIPELINE, build_split_dataset

    modalities = tuple(bundle.modalities)
    carried = ["label", "snr", *(["snr_r"] if "snr_r" in table.column_names else [])]
    ds = build_split_dataset(table, modalities, bundle.modalities, carried, TRAIN_PIPELINE)
    logits, feats, labels, snrs = [], [], [], []
    with torch.no_grad():
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            ok = batch["status"] == "ok"
            if not ok.any():
                continue
            batch = {k: v[ok] for k, v in batch.items()}
            out, f = logits_and_features(bundle.model, prepare_inputs(batch, modalities))
            logits.append(out)
            feats.append(f)
            labels.append(batch["label"].astype(np.int64))
            snr = batch["snr"].astype(np.float64)
            if "snr_r" in batch:
                survey = np.array(batch["snr_r"], dtype=np.float64)  # None -> NaN
                snr = np.where(np.isfinite(survey), survey, snr)
            snrs.append(snr)
    if not logits:
        return np.zeros((0, len(bundle.labels))), None, np.zeros(0, np.int64), np.zeros(0)
    features = None if any(f is None for f in feats) else np.concatenate(feats)
    return np.concatenate(logits), features, np.concatenate(labels), np.concatenate(snrs)


def calibrate_bundle(
    bundle_uri: str,
    manifest: str | tuple[str, ...],
    out: str | None = None,
    *,
    ood_method: str = "combined",
    low_confidence_rate: float = LOW_CONFIDENCE_RATE,
    ood_rate: float = OOD_RATE,
    mahalanobis_rate: float = MAHALANOBIS_RATE,
    flag_rate: float | None = FLAG_RATE,
    max_train_rows: int = MAX_TRAIN_ROWS,
    log: Callable[[str], None] = print,
) -> dict:
    """Fit calibration, OOD model and warning thresholds of a classification bundle on
    ``manifest``'s validation split (one URI or several, as the bundle was trained on
    them; the bundle's split seed and S/N cut; the OOD
    Gaussians on up to ``max_train_rows`` of its training split) and store them in the
    bundle at ``out`` (default: in place). Needs Ray (the pipeline decodes the spectra).
    Returns the stored ``calibration`` section, with ``version`` the new bundle version.
    """
    import pyarrow as pa

    from raysurvey.models.bundle import BundleError, load_bundle, save_calibration
    from raysurvey.train.data import DataSpec, training_tables

    bundle = load_bundle(bundle_uri)
    if bundle.task != "classify":
        raise BundleError(bundle_uri, f"calibration is for classifiers, not task {bundle.task}")
    meta = bundle.metadata
    label_set = meta.get("label_set") or ("class3" if "STAR" in bundle.labels else "stellar8")
    data = training_tables(
        DataSpec(
            manifest=manifest,
            labels=label_set,
            split_seed=int(meta.get("split_seed") or 0),
            min_snr=meta.get("min_snr") or None,
            snr_column=meta.get("snr_column") or "snr_i",
        )
    )
    if list(data.label_names) != list(bundle.labels):
        raise BundleError(
            bundle_uri,
            f"bundle labels {bundle.labels} differ from the manifest's {label_set} labels "
            f"{data.label_names}",
        )
    val, train = data.splits["val"], data.splits["train"]
    if train.num_rows > max_train_rows:
        rows = np.sort(np.random.default_rng(0).choice(train.num_rows, max_train_rows, False))
        train = train.take(pa.array(rows))
    log(
        f"calibrate: {bundle.model_name} {bundle.version} on "
        f"{manifest if isinstance(manifest, str) else ' + '.join(manifest)}: "
        f"{val.num_rows} validation rows, {train.num_rows} training rows for the OOD model"
    )
    val_logits, val_feats, val_labels, val_snr = split_outputs(bundle, val)
    train_feats, train_labels = None, None
    if ood_method != "energy" and val_feats is not None:
        _, train_feats, train_labels, _ = split_outputs(bundle, train)
    calibration, tensors = fit_calibration(
        val_logits,
        val_labels,
        val_feats,
        train_feats,
        train_labels,
        len(bundle.labels),
        ood_method=ood_method,
        low_confidence_rate=low_confidence_rate,
        ood_rate=ood_rate,
        mahalanobis_rate=mahalanobis_rate,
        flag_rate=flag_rate,
        val_snr=val_snr,
    )
    calibration["fitted_on"] = {
        "manifest": manifest if isinstance(manifest, str) else list(manifest),
        "split": "val",
        "split_seed": int(meta.get("split_seed") or 0),
        "label_set": label_set,
    }
    target = out or bundle_uri
    version = save_calibration(bundle_uri, calibration, tensors, out=target)
    v = calibration["validation"]
    log(
        f"calibrate: {calibration['probabilities']['method']} scaling; validation ECE "
        f"{100 * v['ece_before']:.2f} % -> {100 * v['ece_after']:.2f} %, NLL "
        f"{v['nll_before']:.4f} -> {v['nll_after']:.4f}; thresholds: confidence < "
        f"{calibration['thresholds']['low_confidence']:.4f}, {calibration['ood']['method']} "
        f"ood_score > {calibration['thresholds']['ood']:.4f}, S/N < "
        f"{calibration['thresholds'].get('low_snr', float('nan')):.2f}; "
        f"bundle {target} version {version}"
    )
    return calibration | {"version": version, "uri": target}
