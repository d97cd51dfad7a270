"""The predictor stage: chained bundles on a batch of modalities -> catalog columns.

``Predictor`` is a callable class: Ray Data runs it in an actor pool, so each actor
loads its bundles once (on its GPU when it has one) and keeps them. It takes an Arrow
batch from the modality stage and returns the catalog's columns for those rows, the
heavy modality tensors dropped. Rows that did not decode keep their status and
error and get null predictions.

Classifier probabilities are calibrated with the bundle's stored scaling; the class
bundle's penultimate features give ``ood_score``; ``warning`` is the bitmask of
``raysurvey.warning_bits`` with the thresholds each bundle stores. With a redshift
plan (``--templates``), the grid ``flux`` and ``ivar`` come too and every ok row gets
a template-fit ``z_pred``, ``z_pred_err`` and the Z_UNRELIABLE bit
(``raysurvey.infer.redshift_stage``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from raysurvey import warning_bits as bits
from raysurvey.calibration import logits_and_features, scale_logits, score_ood, softmax
from raysurvey.data.decode import STATUS_ERROR, STATUS_OK
from raysurvey.data.pipeline import column_numpy
from raysurvey.infer.catalog import (
    LABEL_COLUMNS,
    PASSTHROUGH,
    REGRESSION_COLUMNS,
    BundleRole,
    healpix29,
    prob_column,
)
from raysurvey.infer.redshift_stage import RedshiftFill, RedshiftPlan
from raysurvey.models import prepare_inputs
from raysurvey.models.bundle import load_bundle

#: Internal column: the row's position in the release (dropped before writing).
ROW = "_row"
PREDICT_ERROR = "predict_failed"
#: Labels a subclass bundle may have that are not stellar subclasses: a chained
#: subclass bundle whose best label is one of them disagrees with pred_class STAR.
NOT_STELLAR = ("GALAXY", "QSO", "UNKNOWN")


def quality_bits(
    table: pa.Table, good: np.ndarray, low_snr_below: float = bits.LOW_SNR_BELOW
) -> np.ndarray:
    """BAD_READ for error rows; LOW_SNR and FEW_GOOD_PIXELS for the others.

    The S/N is the survey's ``snr_r`` where the release has one, else the grid S/N of
    the decode stage (``snr`` column) when present; ``low_snr_below`` is the class
    bundle's fitted threshold where it has one.
    """
    n = table.num_rows
    out = np.where(good, 0, bits.BAD_READ).astype(np.int64)
    snr = np.full(n, np.nan)
    if "snr_r" in table.column_names:
        snr = column_numpy(table, "snr_r").astype(np.float64)
    if "snr" in table.column_names:
        grid_snr = column_numpy(table, "snr").astype(np.float64)
        snr = np.where(np.isfinite(snr), snr, grid_snr)
    with np.errstate(invalid="ignore"):
        out[good & (snr < low_snr_below)] |= bits.LOW_SNR
        if "good_fraction" in table.column_names:
            fraction = column_numpy(table, "good_fraction").astype(np.float64)
            out[good & (fraction < bits.FEW_GOOD_PIXELS_BELOW)] |= bits.FEW_GOOD_PIXELS
    return out


def _device(use_gpu: bool | None) -> torch.device:
    if use_gpu is None:
        use_gpu = torch.cuda.is_available()
    if use_gpu and not torch.cuda.is_available():
        raise RuntimeError("a GPU predictor was asked for but torch sees no CUDA device")
    return torch.device("cuda" if use_gpu else "cpu")


class Predictor:
    """Loads the bundles of ``roles`` once and predicts for Arrow batches.

    ``threads``: torch intra-op threads for a CPU actor (its CPU share). ``redshift``:
    the template fit of ``z_pred`` (None: ``z_pred`` only from a regression bundle).
    """

    def __init__(
        self,
        roles: Sequence[BundleRole],
        use_gpu: bool | None = None,
        threads: int = 1,
        redshift: RedshiftPlan | None = None,
    ):
        self.roles = list(roles)
        self.device = _device(use_gpu)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        # CPU: the models' inference fast paths (spec_cnn's folded batch-norm, ~2x on
        # one thread; logits equal to float32 rounding). GPUs run the plain models.
        fast = self.device.type == "cpu"
        self.bundles = [
            load_bundle(role.uri, device=self.device, prepare_inference=fast) for role in self.roles
        ]
        for role, bundle in zip(self.roles, self.bundles, strict=True):
            if bundle.version != role.version:
                raise RuntimeError(
                    f"{role.uri}: bundle changed since the catalog was planned "
                    f"(version {bundle.version}, planned {role.version})"
                )
        self.redshift = RedshiftFill(redshift, self.device) if redshift else None
        class_thresholds = next(
            (
                (b.calibration or {}).get("thresholds", {})
                for r, b in zip(self.roles, self.bundles, strict=True)
                if r.role == "class"
            ),
            {},
        )
        self.low_snr_below = float(class_thresholds.get("low_snr", bits.LOW_SNR_BELOW))

    def _fit_redshifts(self, table, good, pred_class, columns, valid, warning) -> np.ndarray:
        """``z_pred``, ``z_pred_err``, Z_UNRELIABLE and TEMPLATE_DISAGREES for the good
        rows (in place); returns the ``template_class`` column."""
        n = table.num_rows
        rows = np.flatnonzero(good)
        has_class = any(role.role == "class" for role in self.roles)
        classes = pred_class[rows] if has_class else [None] * len(rows)
        fit = self.redshift(
            column_numpy(table, "flux")[rows], column_numpy(table, "ivar")[rows], classes
        )
        for name, values in (("z_pred", fit["z"]), ("z_pred_err", fit["z_err"])):
            column = np.full(n, np.nan, dtype=np.float32)
            column[rows] = values
            columns[name] = column
            valid[name] = np.isfinite(column)
        warning[rows[fit["unreliable"]]] |= bits.Z_UNRELIABLE
        warning[rows[fit["disagrees"]]] |= bits.TEMPLATE_DISAGREES
        template_class = np.full(n, None, dtype=object)
        template_class[rows] = fit["template_class"]
        return template_class

    def _outputs(self, bundle, batch: dict[str, np.ndarray]):
        """(outputs [B, k], penultimate features [B, D] or None)."""
        x = prepare_inputs(batch, tuple(bundle.model.modalities), self.device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with torch.inference_mode(), autocast:
            return logits_and_features(bundle.model, x)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        status = np.asarray(table.column("status").to_pylist(), dtype=object)
        error = np.asarray(table.column("error").to_pylist(), dtype=object)
        ok = status == STATUS_OK
        index = np.flatnonzero(ok)
        needed = {m for b in self.bundles for m in b.model.modalities}
        batch = {m: column_numpy(table, m)[index] for m in needed}

        columns: dict[str, np.ndarray] = {}
        valid: dict[str, np.ndarray] = {}  # per column: rows that have a value
        pred_class = np.full(n, None, dtype=object)
        pred_subclass = np.full(n, None, dtype=object)
        confidence = np.full(n, np.nan, dtype=np.float32)
        ood_score = np.full(n, np.nan, dtype=np.float32)
        warning = np.zeros(n, dtype=np.int64)
        finite = np.ones(n, dtype=bool)
        star_rows = star_keep = None
        for role, bundle in zip(self.roles, self.bundles, strict=True):
            out, feats = (
                self._outputs(bundle, batch)
                if len(index)
                else (np.zeros((0, len(role.labels))), None)
            )
            finite[index] &= np.isfinite(out).all(axis=1)
            if role.task == "classify":
                calibration = bundle.calibration or {}
                thresholds = calibration.get("thresholds", {})
                probs = softmax(scale_logits(out, calibration.get("probabilities")))
                probs = probs.astype(np.float32)
                ood = (
                    score_ood(calibration, bundle.calibration_tensors, out, feats)
                    if len(index)
                    else None
                )
                labels = np.asarray(role.labels, dtype=object)
                rows = index if role.role == "class" else star_rows
                keep = np.ones(len(index), dtype=bool) if role.role == "class" else star_keep
                for k, label in enumerate(role.labels):
                    column = np.full(n, np.nan, dtype=np.float32)
                    column[rows] = probs[keep, k]
                    columns[prob_column(label)] = column
                    valid[prob_column(label)] = np.isin(np.arange(n), rows)
                if role.role == "class":
                    top = probs.argmax(axis=1) if len(index) else np.zeros(0, dtype=int)
                    pred_class[index] = labels[top]
                    confidence[index] = probs.max(axis=1) if len(index) else []
                    star_keep = pred_class[index] == "STAR"
                    star_rows = index[star_keep]
                    if "low_confidence" in thresholds:
                        low = confidence[index] < thresholds["low_confidence"]
                        warning[index[low]] |= bits.LOW_CONFIDENCE
                    if ood is not None:
                        ood_score[index] = ood
                        if "ood" in thresholds:
                            warning[index[ood > thresholds["ood"]]] |= bits.OUT_OF_DISTRIBUTION
                else:
                    best = labels[probs[keep].argmax(axis=1)] if len(rows) else []
                    pred_subclass[rows] = best
                    # the subclass head does not recognise the row as one of its stars
                    disagrees = np.isin(np.asarray(best, dtype=object), list(NOT_STELLAR))
                    if ood is not None and "ood" in thresholds:
                        disagrees |= ood[keep] > thresholds["ood"]
                    warning[rows[disagrees]] |= bits.CHAIN_DISAGREES
            else:
                norm = bundle.target_normalisation or {"mean": 0.0, "std": 1.0}
                values = out * np.asarray(norm["std"]) + np.asarray(norm["mean"])
                for k, target in enumerate(role.labels):
                    column = np.full(n, np.nan, dtype=np.float32)
                    column[index] = values[:, k]
                    columns[REGRESSION_COLUMNS[target]] = column
                    valid[REGRESSION_COLUMNS[target]] = ok.copy()

        failed = ok & ~finite
        status[failed] = STATUS_ERROR
        error[failed] = f"{PREDICT_ERROR}: the model returned non-finite values"
        good = status == STATUS_OK
        error[good] = None
        pred_class[~good] = None
        pred_subclass[~good] = None
        warning |= quality_bits(table, good, self.low_snr_below)
        template_class = np.full(n, None, dtype=object)
        if self.redshift is not None:
            template_class = self._fit_redshifts(table, good, pred_class, columns, valid, warning)
        ood_score[~good] = np.nan

        out_table = {name: table.column(name) for name in (*PASSTHROUGH, *LABEL_COLUMNS)}
        ra = column_numpy(table, "ra").astype(np.float64)
        dec = column_numpy(table, "dec").astype(np.float64)
        pixels = healpix29(ra, dec)
        out_table["_healpix_29"] = pa.array(pixels, mask=pixels < 0)
        out_table["good_fraction"] = table.column("good_fraction")
        out_table["pred_class"] = pa.array(pred_class, type=pa.string())
        out_table["pred_subclass"] = pa.array(pred_subclass, type=pa.string())
        for name, values in columns.items():
            out_table[name] = pa.array(values, mask=~(valid[name] & good))
        out_table["confidence"] = pa.array(confidence, mask=~good | ~np.isfinite(confidence))
        out_table["ood_score"] = pa.array(ood_score, mask=~np.isfinite(ood_score))
        out_table["warning"] = pa.array(warning, type=pa.int64())
        out_table["template_class"] = pa.array(template_class, type=pa.string())
        out_table["status"] = pa.array(status, type=pa.string())
        out_table["error"] = pa.array(error, type=pa.string())
        out_table[ROW] = table.column(ROW)
        return pa.table(out_table)
