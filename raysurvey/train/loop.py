"""The per-worker training loop run by Ray Train's ``TorchTrainer``.

Each worker reads its shard of the streaming datasets, trains the registered model
wrapped by ``prepare_model`` (DDP when there are several workers), sums its validation
statistics with the other workers (so every worker reports the same global metrics),
and reports once per epoch; rank 0 attaches the checkpoint. A restarted worker group
(``FailureConfig``) or a rerun with the same storage and name resumes from the last
checkpoint: the epoch counter continues, it does not restart.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from raysurvey.models import create_model, prepare_inputs, run_model
from raysurvey.train.augment import augment_flux1d
from raysurvey.train.batchnorm import recalibrate_batchnorm
from raysurvey.train.metrics import C_KM_S, CATASTROPHIC_KM_S, classification_metrics

STATE_FILE = "state.pt"


@dataclass(frozen=True)
class LoopConfig:
    model: str
    model_config: dict
    modalities: tuple[str, ...]
    task: str
    label_names: tuple[str, ...]
    target_normalisation: dict | None = None
    optimizer: str = "adam"
    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    patience: int | None = None
    class_weights: tuple[float, ...] | None = None  # cross-entropy weight per label
    recalibrate_bn: bool = False  # re-estimate BatchNorm statistics each epoch (batchnorm.py)
    augment: bool = False  # augment flux1d rows of the training split (augment.py)
    amp: bool = True  # bf16 autocast where the worker has a GPU
    shuffle_buffer: int = 256
    seed: int = 0
    fail_at_epoch: int | None = None  # test hook: the last worker raises once in this epoch
    fail_marker: str | None = None  # file that records the hook has fired
    extra: dict = field(default_factory=dict)


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: adam, adamw, adagrad, sgd")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _all_reduce(values: np.ndarray, device) -> np.ndarray:
    """Sum a float64 array over the workers (identity with one worker)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    t = torch.as_tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.cpu().numpy()


class EpochStats:
    """Sums over one pass that add across workers: loss, confusion matrix or the
    regression sums behind R^2, RMSE and the catastrophic-failure count."""

    def __init__(self, cfg: LoopConfig):
        self.cfg = cfg
        k = len(cfg.label_names)
        self.classify = cfg.task == "classify"
        self.loss = np.zeros(2)  # sum, n
        self.cm = np.zeros((k, k)) if self.classify else None
        # per target: SS_res, sum y, sum y^2; then catastrophic count
        self.reg = None if self.classify else np.zeros(3 * k + 1)
        norm = cfg.target_normalisation or {"mean": [0.0] * k, "std": [1.0] * k}
        self.mean = np.asarray(norm["mean"])
        self.std = np.asarray(norm["std"])

    def add(self, loss: float, out: torch.Tensor, batch: dict) -> None:
        n = len(out)
        self.loss += (loss * n, n)
        pred = out.detach().float().cpu().numpy()
        if self.classify:
            np.add.at(self.cm, (batch["label"].astype(int), pred.argmax(axis=1)), 1)
            return
        y = np.asarray(batch["target"], dtype=np.float64)
        p = pred * self.std + self.mean
        k = y.shape[1]
        self.reg[:k] += ((y - p) ** 2).sum(axis=0)
        self.reg[k : 2 * k] += y.sum(axis=0)
        self.reg[2 * k : 3 * k] += (y**2).sum(axis=0)
        if self.cfg.task == "redshift" and "class" in batch:
            limit = np.array(
                [CATASTROPHIC_KM_S.get(str(c).upper(), 1000.0) for c in batch["class"]]
            )
            velocity = C_KM_S * np.abs(p[:, 0] - y[:, 0]) / (1.0 + y[:, 0])
            self.reg[-1] += (velocity > limit).sum()

    def reduce(self, device) -> None:
        parts = [self.loss] + ([self.cm.ravel()] if self.classify else [self.reg])
        flat = _all_reduce(np.concatenate(parts), device)
        self.loss = flat[:2]
        if self.classify:
            self.cm = flat[2:].reshape(self.cm.shape)
        else:
            self.reg = flat[2:]

    def metrics(self, prefix: str) -> dict:
        total, n = self.loss
        out = {f"{prefix}_loss": float(total / n) if n else float("nan"), f"{prefix}_n": int(n)}
        if self.classify:
            m = classification_metrics(self.cm, self.cfg.label_names)
            out[f"{prefix}_accuracy"] = m["accuracy"]
            out[f"{prefix}_macro_f1"] = m["macro_f1"]
            if prefix == "val":
                out["val_confusion_matrix"] = m["confusion_matrix"]
            return out
        k = len(self.cfg.label_names)
        ss_res, s1, s2 = self.reg[:k], self.reg[k : 2 * k], self.reg[2 * k : 3 * k]
        ss_tot = s2 - s1**2 / max(n, 1)
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.nan)
        for i, name in enumerate(self.cfg.label_names):
            out[f"{prefix}_r2_{name}"] = float(r2[i])
            out[f"{prefix}_rmse_{name}"] = float(np.sqrt(ss_res[i] / max(n, 1)))
        out[f"{prefix}_r2"] = float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")
        if self.cfg.task == "redshift":
            out[f"{prefix}_catastrophic_rate"] = float(self.reg[-1] / max(n, 1))
        return out


def _targets(cfg: LoopConfig, batch: dict, device) -> torch.Tensor:
    if cfg.task == "classify":
        return torch.as_tensor(batch["label"], dtype=torch.long, device=device)
    norm = cfg.target_normalisation or {}
    mean = np.asarray(norm.get("mean", 0.0))
    std = np.asarray(norm.get("std", 1.0))
    y = (np.asarray(batch["target"], dtype=np.float64) - mean) / std
    return torch.as_tensor(y, dtype=torch.float32, device=device)


def _forward(model, cfg: LoopConfig, batch: dict, device, use_amp: bool, loss_fn):
    """Model outputs and loss for one numpy batch (bf16 autocast on GPU)."""
    x = prepare_inputs(batch, cfg.modalities, device)
    y = _targets(cfg, batch, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        out = run_model(model, x)
        loss = loss_fn(out.float(), y)
    return out, loss


def _usable(batch: dict) -> dict | None:
    """The rows that decoded: a spectrum with status "error" has no pixels to learn from
    (its modality columns are zeros); None when no row is left."""
    ok = batch["status"] == "ok"
    if ok.all():
        return batch
    if not ok.any():
        return None
    return {k: v[ok] for k, v in batch.items()}


def _usable_batches(batches):
    """The decoded rows of each batch, skipping batches too small for BatchNorm."""
    for batch in batches:
        batch = _usable(batch)
        if batch is not None and len(batch["status"]) >= 2:
            yield batch


def _maybe_fail(cfg: LoopConfig, epoch: int, rank: int, world: int) -> None:
    """Test hook: the last worker dies once in ``fail_at_epoch`` (a marker file keeps
    the restarted worker from failing again)."""
    if cfg.fail_at_epoch != epoch or rank != world - 1 or not cfg.fail_marker:
        return
    marker = Path(cfg.fail_marker)
    if marker.exists():
        return
    marker.write_text(f"failed in epoch {epoch}\n")
    time.sleep(3)  # let the controller register the previous epoch's checkpoint first
    raise RuntimeError(f"test hook: worker {rank} fails in epoch {epoch}")


def train_loop(config: dict) -> None:
    """Ray Train worker entry point (``train_loop_per_worker``)."""
    import ray.train
    import ray.train.torch

    cfg = LoopConfig(**config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(cfg.seed)
    device = ray.train.torch.get_device()
    use_amp = cfg.amp and device.type == "cuda"

    model = create_model(cfg.model, **cfg.model_config)
    start_epoch, best_loss, bad_epochs, state = 1, None, 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        start_epoch = state["epoch"] + 1
        best_loss, bad_epochs = state["best_loss"], state["bad_epochs"]
    model = ray.train.torch.prepare_model(model)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    if cfg.task == "classify":
        weight = torch.tensor(cfg.class_weights, device=device) if cfg.class_weights else None
        loss_fn = nn.CrossEntropyLoss(weight=weight)
    else:
        loss_fn = nn.MSELoss()

    augment_rng = np.random.default_rng([cfg.seed, rank, start_epoch])
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    for epoch in range(start_epoch, cfg.epochs + 1):
        _maybe_fail(cfg, epoch, rank, world)
        model.train()
        train_stats = EpochStats(cfg)
        for batch in train_shard.iter_batches(
            batch_size=cfg.batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=cfg.shuffle_buffer or None,
            local_shuffle_seed=cfg.seed + epoch + 1000 * rank if cfg.shuffle_buffer else None,
        ):
            batch = _usable(batch)
            # BatchNorm cannot train on a single row (a split's last batch may hold one);
            # the shards are equal, so every DDP worker skips the same step
            if batch is None or len(batch["status"]) < 2:
                continue
            if cfg.augment and "flux1d" in batch:
                batch["flux1d"] = augment_flux1d(batch["flux1d"], augment_rng)
            out, loss = _forward(model, cfg, batch, device, use_amp, loss_fn)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_stats.add(loss.item(), out, batch)

        if cfg.recalibrate_bn:
            recalibrate_batchnorm(
                _unwrap(model),  # no DDP collectives: each worker's own pass
                _usable_batches(
                    train_shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy")
                ),
                lambda m, b: run_model(m, prepare_inputs(b, cfg.modalities, device)),
            )
        model.eval()
        val_stats = EpochStats(cfg)
        with torch.no_grad():
            for batch in val_shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
                batch = _usable(batch)
                if batch is None:
                    continue
                out, loss = _forward(model, cfg, batch, device, use_amp, loss_fn)
                val_stats.add(loss.item(), out, batch)
        train_stats.reduce(device)
        val_stats.reduce(device)
        metrics = {"epoch": epoch, "resumed_at_epoch": start_epoch}
        metrics |= train_stats.metrics("train") | val_stats.metrics("val")
        key = "val_accuracy" if cfg.task == "classify" else "val_r2"
        metrics["val_score"] = metrics[key] if np.isfinite(metrics[key]) else -1e9
        val_loss = metrics["val_loss"]
        if best_loss is None or val_loss < best_loss:
            best_loss, bad_epochs = val_loss, 0
        else:
            bad_epochs += 1
        stop = cfg.patience is not None and bad_epochs >= cfg.patience
        metrics["early_stop"] = bool(stop)

        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                torch.save(
                    {
                        "model": _unwrap(model).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch,
                        "best_loss": best_loss,
                        "bad_epochs": bad_epochs,
                    },
                    os.path.join(tmp, STATE_FILE),
                )
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)
        if stop:
            break
