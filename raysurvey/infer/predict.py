"""The predictor stage: chained bundles on a batch of modalities -> catalog columns.

``Predictor`` is a callable class: Ray Data runs it in an actor pool, so each actor
loads its bundles once (on its GPU when it has one) and keeps them. It takes an Arrow
batch from the modality stage and returns the catalog's columns for those rows, the
heavy modality tensors dropped. Rows that did not decode keep their status and
error and get null predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

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
from raysurvey.models import prepare_inputs, run_model
from raysurvey.models.bundle import load_bundle

#: Internal column: the row's position in the release (dropped before writing).
ROW = "_row"
PREDICT_ERROR = "predict_failed"


def _device(use_gpu: bool | None) -> torch.device:
    if use_gpu is None:
        use_gpu = torch.cuda.is_available()
    if use_gpu and not torch.cuda.is_available():
        raise RuntimeError("a GPU predictor was asked for but torch sees no CUDA device")
    return torch.device("cuda" if use_gpu else "cpu")


class Predictor:
    """Loads the bundles of ``roles`` once and predicts for Arrow batches.

    ``threads``: torch intra-op threads for a CPU actor (its CPU share).
    """

    def __init__(
        self,
        roles: Sequence[BundleRole],
        use_gpu: bool | None = None,
        threads: int = 1,
    ):
        self.roles = list(roles)
        self.device = _device(use_gpu)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        self.bundles = [load_bundle(role.uri, device=self.device) for role in self.roles]
        for role, bundle in zip(self.roles, self.bundles, strict=True):
            if bundle.version != role.version:
                raise RuntimeError(
                    f"{role.uri}: bundle changed since the catalog was planned "
                    f"(version {bundle.version}, planned {role.version})"
                )

    def _outputs(self, bundle, batch: dict[str, np.ndarray]) -> np.ndarray:
        x = prepare_inputs(batch, tuple(bundle.model.modalities), self.device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with torch.inference_mode(), autocast:
            return run_model(bundle.model, x).float().cpu().numpy()

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
        finite = np.ones(n, dtype=bool)
        star_rows = star_keep = None
        for role, bundle in zip(self.roles, self.bundles, strict=True):
            out = self._outputs(bundle, batch) if len(index) else np.zeros((0, len(role.labels)))
            finite[index] &= np.isfinite(out).all(axis=1)
            if role.task == "classify":
                probs = torch.softmax(torch.from_numpy(out), dim=1).numpy().astype(np.float32)
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
                else:
                    pred_subclass[rows] = labels[probs[keep].argmax(axis=1)] if len(rows) else []
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
        out_table["status"] = pa.array(status, type=pa.string())
        out_table["error"] = pa.array(error, type=pa.string())
        out_table[ROW] = table.column(ROW)
        return pa.table(out_table)
