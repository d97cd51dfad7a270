"""Evaluate a bundle on a release: the papers' metrics, tables and figures.

Reads the bundle's split of the manifest (by default the test split of the seed it was
trained with, so the figures are held-out ones), streams it through the pipeline with
the modality options the bundle records, and writes to ``out``:

- ``metrics.json``: top-level ``accuracy``, ``macro_f1``, ``per_class`` (precision,
  recall, F1, support), ``confusion_matrix``, ``accuracy_by_snr``, counts (rows
  evaluated, unreadable spectra); for regression ``r2``, ``rmse`` per target and the
  redshift catastrophic-failure rate;
- for classifiers ``ece_before`` / ``ece_after`` (expected calibration error, 15 bins,
  of the raw softmax and of the bundle's calibrated probabilities, which also give the
  predictions, as in the catalog) and ``reliability.png``;
- ``confusion_matrix.png``; ``accuracy_by_snr.png`` and ``accuracy_by_snr.csv``
  (DRC-Net's view); ``per_class.md`` (the audio-fusion paper's Table 6 layout).
"""

from __future__ import annotations

import json

import fsspec
import numpy as np
import torch

from raysurvey.calibration import (
    ECE_BINS,
    expected_calibration_error,
    plot_reliability,
    scale_logits,
    softmax,
)
from raysurvey.models import prepare_inputs, run_model
from raysurvey.models.bundle import load_bundle
from raysurvey.train.data import DataSpec, training_tables
from raysurvey.train.figures import save_png
from raysurvey.train.metrics import (
    SNR_BINS,
    accuracy_by_snr,
    catastrophic_rate,
    classification_metrics,
    confusion_matrix,
    regression_metrics,
)
from raysurvey.train.split_data import TRAIN_PIPELINE, build_split_dataset


def predict_split(bundle, table, batch_size: int = 64, snr_column: str = "snr_i"):
    """Model outputs for the rows of ``table`` that decode, with their label columns."""
    modalities = tuple(bundle.modalities)
    label_columns = ["label"] if bundle.task == "classify" else ["target", "class"]
    ds = build_split_dataset(
        table,
        modalities,
        bundle.modalities,
        [*label_columns, snr_column],
        TRAIN_PIPELINE,
    )
    outputs, kept, n_error = [], {k: [] for k in [*label_columns, snr_column]}, 0
    with torch.no_grad():
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            ok = batch["status"] == "ok"
            n_error += int((~ok).sum())
            if not ok.any():
                continue
            batch = {k: v[ok] for k, v in batch.items()}
            x = prepare_inputs(batch, modalities)
            outputs.append(run_model(bundle.model, x).float().numpy())
            for k in kept:
                kept[k].append(batch[k])
    out = np.concatenate(outputs) if outputs else np.zeros((0, len(bundle.labels)))
    return out, {k: np.concatenate(v) if v else np.array([]) for k, v in kept.items()}, n_error


def evaluate(
    bundle_uri: str,
    manifest: str,
    out: str,
    split: str = "test",
    min_snr: float | None = None,
    snr_column: str | None = None,
    snr_bins: list[float] | None = None,
) -> dict:
    """Score a bundle on ``split`` of ``manifest`` and write the report to ``out``.

    ``min_snr``: the S/N cut (default: the one the bundle was trained with; pass 0 to
    score every S/N, e.g. for the accuracy-per-S/N table). ``split`` "heldout": every
    row the bundle never trained on (``heldout_rows``), with ``min_snr=0`` the
    DRC-Net protocol. ``snr_column`` and
    ``snr_bins``: the manifest S/N column of the cut and of the per-bin accuracy, and
    the bin edges (default: the bundle's, e.g. snr_r and DRC-Net's bins for the drcnet
    preset; else snr_i and ``metrics.SNR_BINS``).
    """
    bundle = load_bundle(bundle_uri)
    meta = bundle.metadata
    if min_snr is None:
        min_snr = meta.get("min_snr")
    snr_column = snr_column or meta.get("snr_column") or "snr_i"
    bins = snr_bins or meta.get("snr_bins") or list(SNR_BINS)
    bins = [float(b) for b in bins]
    data = training_tables(
        DataSpec(
            manifest=manifest,
            labels=meta.get("label_set", "class3" if "STAR" in bundle.labels else "stellar8"),
            task=bundle.task,
            split_seed=int(meta.get("split_seed", 0)),
            min_snr=min_snr or None,
            snr_column=snr_column,
        )
    )
    if split == "all":
        import pyarrow as pa

        table = pa.concat_tables(data.splits.values())
    elif split == "heldout":
        table = heldout_rows(data.splits, meta.get("min_snr"), snr_column)
    else:
        table = data.splits[split]
    outputs, cols, n_error = predict_split(bundle, table, snr_column=snr_column)
    result = {
        "bundle": bundle_uri,
        "model_name": bundle.model_name,
        "model_version": bundle.version,
        "manifest": manifest,
        "split": split,
        "min_snr": min_snr or None,
        "snr_column": snr_column,
        "n_rows": table.num_rows,
        "n_evaluated": int(len(outputs)),
        "n_unreadable": n_error,
        # real files have pipeline labels, not truth: the score is agreement with them
        "reference": REFERENCE[data.label_source],
    }
    if bundle.task == "classify":
        # predictions as the catalog makes them: from the calibrated probabilities
        scaling = (bundle.calibration or {}).get("probabilities")
        calibrated = softmax(scale_logits(outputs, scaling))
        y, pred = cols["label"].astype(int), calibrated.argmax(axis=1)
        cm = confusion_matrix(y, pred, len(bundle.labels))
        result |= classification_metrics(cm, bundle.labels)
        result["accuracy_by_snr"] = accuracy_by_snr(y, pred, cols[snr_column], bins)
        result |= calibration_metrics(softmax(outputs), calibrated if scaling else None, y)
        result["_reliability"] = (softmax(outputs), calibrated if scaling else None, y)
    else:
        norm = bundle.target_normalisation or {"mean": 0.0, "std": 1.0}
        pred = outputs * np.asarray(norm["std"]) + np.asarray(norm["mean"])
        y = np.stack(cols["target"]) if len(cols["target"]) else np.zeros_like(pred)
        result |= regression_metrics(y, pred)
        result["targets"] = bundle.labels
        if bundle.task == "redshift":
            result["catastrophic_rate"] = catastrophic_rate(y[:, 0], pred[:, 0], cols["class"])
    write_report(result, out)
    return result


def calibration_metrics(raw: np.ndarray, calibrated: np.ndarray | None, y: np.ndarray) -> dict:
    """ECE (15 bins) of the raw softmax and of the calibrated probabilities (None when
    the bundle has no calibration)."""
    return {
        "ece_bins": ECE_BINS,
        "ece_before": expected_calibration_error(raw, y),
        "ece_after": expected_calibration_error(calibrated, y) if calibrated is not None else None,
    }


def evaluate_redshift(manifest: str, out: str, **kwargs) -> dict:
    """``--task redshift``: template-fitting redshifts (``raysurvey.redshift.evaluate``)."""
    from raysurvey.redshift.evaluate import evaluate_redshift as run

    return run(manifest, out, **kwargs)


def heldout_rows(splits: dict, trained_above: float | None, snr_column: str):
    """Every row the model never trained on: validation and test rows, and the training
    split's rows at or below the training S/N cut (DRC-Net trains at S/N_r > 30 and is
    tested at every S/N, so its faint training-split spectra are held out too)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [splits["val"], splits["test"]]
    if trained_above:
        train = splits["train"]
        faint = pc.fill_null(pc.less_equal(train.column(snr_column), trained_above), True)
        parts.append(train.filter(faint))
    return pa.concat_tables(parts)


def evaluate_stored(
    bundle_uri: str, features_uri: str, manifest: str, split: str = "test", batch_size: int = 64
) -> dict:
    """Classification metrics of a bundle on a split of precomputed features (a sweep's
    feature store): the same split as ``evaluate`` without decoding a file again."""
    from raysurvey.data.pipeline import column_numpy
    from raysurvey.train.feature_store import load_features, rows_for

    bundle = load_bundle(bundle_uri)
    meta = bundle.metadata
    data = training_tables(
        DataSpec(
            manifest=manifest,
            labels=meta.get("label_set", "stellar8"),
            split_seed=int(meta.get("split_seed", 0)),
            min_snr=meta.get("min_snr"),
        )
    )
    modalities = tuple(bundle.modalities)
    store = load_features(features_uri, ["uri", "status", *modalities])
    rows = rows_for(store, data.splits[split], ["label"])
    labels, preds = [], []
    with torch.no_grad():
        for start in range(0, rows.num_rows, batch_size):
            part = rows.slice(start, batch_size)
            ok = column_numpy(part, "status") == "ok"
            if not ok.any():
                continue
            batch = {m: column_numpy(part, m)[ok] for m in modalities}
            out = run_model(bundle.model, prepare_inputs(batch, modalities))
            preds.append(out.float().numpy().argmax(axis=1))
            labels.append(column_numpy(part, "label")[ok].astype(int))
    y = np.concatenate(labels) if labels else np.zeros(0, int)
    pred = np.concatenate(preds) if preds else np.zeros(0, int)
    return classification_metrics(confusion_matrix(y, pred, len(bundle.labels)), bundle.labels)


#: What a score is measured against, by where the labels came from.
REFERENCE = {
    "truth": "synthetic truth (accuracy)",
    "pipeline": "survey pipeline labels (agreement with the survey pipeline, not accuracy)",
    "mixed": "truth where known, else survey pipeline labels",
}


def score_name(result: dict) -> str:
    """ "accuracy" against truth, "agreement" against pipeline labels."""
    return "accuracy" if result.get("reference", "").startswith("synthetic") else "agreement"


def write_report(result: dict, out: str) -> None:
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    reliability = result.pop("_reliability", None)
    if reliability is not None:
        raw, calibrated, y = reliability
        curves = {"softmax": (raw, y)}
        if calibrated is not None:
            curves["calibrated"] = (calibrated, y)
        title = f"{result.get('split', '')} split"
        plot_reliability(curves, f"{out.rstrip('/')}/reliability.png", title=title)
    with fs.open(f"{path}/metrics.json", "w") as f:
        json.dump(result, f, indent=2)
    if "confusion_matrix" not in result:
        return
    with fs.open(f"{path}/per_class.md", "w") as f:
        f.write("| Class | Precision (%) | Recall (%) | F1-score (%) | Support |\n")
        f.write("|---|---:|---:|---:|---:|\n")
        for label, m in result["per_class"].items():
            f.write(
                f"| {label} | {100 * m['precision']:.2f} | {100 * m['recall']:.2f} | "
                f"{100 * m['f1']:.2f} | {m['support']} |\n"
            )
        f.write(
            f"| {score_name(result)} | | | {100 * result['accuracy']:.2f} | {result['n']} |\n"
            f"| macro F1 | | | {100 * result['macro_f1']:.2f} | |\n"
        )
    with fs.open(f"{path}/accuracy_by_snr.csv", "w") as f:
        f.write("snr_lo,snr_hi,n,accuracy\n")
        for row in result["accuracy_by_snr"]:
            acc = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
            f.write(f"{row['snr_lo']},{row['snr_hi']},{row['n']},{acc}\n")
    _plots(result, fs, path)


def _plots(result: dict, fs, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion_matrix"])
    labels = result["labels"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.6 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black"
        )
    ax.set(
        xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels
    )
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {result['accuracy']:.3f}")
    save_png(fig, fs, f"{path}/confusion_matrix.png")

    rows = [r for r in result["accuracy_by_snr"] if r["n"]]
    fig, ax = plt.subplots(figsize=(5, 3))
    names = [f"{r['snr_lo']:g}-{r['snr_hi']:g}" for r in rows]
    ax.bar(names, [r["accuracy"] for r in rows], color="#1f77b4")
    for k, r in enumerate(rows):
        ax.text(k, r["accuracy"], f"n={r['n']}", ha="center", va="bottom", fontsize=7)
    ax.set(xlabel=f"S/N ({result.get('snr_column', 'snr_i')})", ylabel="accuracy", ylim=(0, 1.1))
    save_png(fig, fs, f"{path}/accuracy_by_snr.png")
    plt.close("all")
