"""DINO pretraining with Ray Train: the driver (``pretrain``) and the worker loop.

Unlabelled spectra of any manifests (synthetic releases, ``raysurvey manifest`` of a
survey's files) are decoded by the pipeline's decode tasks into grid flux (unreadable
rows dropped), kept in the object store when they fit, and split equally over the
workers. Each worker makes the multi-crop views of its batch (``dino_views.py``),
renders them with the model's modality, and takes a DINO step (``dino.py``): the
student is DDP-wrapped by ``prepare_model``, the EMA teacher and the centre are
replicated (the centre's batch mean is all-reduced, so they stay identical). Rank 0
checkpoints student, teacher, optimiser and centre each epoch; a replaced worker
group or a rerun with the same storage and name resumes from the last checkpoint, as
``jobs/train.py`` does. At the end the student's backbone is written with
``save_pretrained``: ``jobs/train.py --pretrained DIR`` fine-tunes it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from raysurvey.data.decode import STATUS_OK
from raysurvey.data.pipeline import PipelineConfig, decode_table, manifest_blocks
from raysurvey.train.dino import (
    DINOLoss,
    DINOModel,
    HeadConfig,
    cancel_last_layer_grads,
    clip_gradients,
    cosine_schedule,
    dino_forward,
    ema_update,
    entropy,
    param_groups,
    teacher_temp_schedule,
)
from raysurvey.train.dino_views import ViewConfig, make_views
from raysurvey.train.pretraining_encoding import PROVENANCE_FILE
from raysurvey.train.split_data import TRAIN_PIPELINE

STATE_FILE = "dino_state.pt"
#: Decoded flux is kept in the object store when it takes at most this share of it.
CACHE_SHARE = 0.25


@dataclass(frozen=True)
class DinoConfig:
    """The method's settings (the paper's ViT-S defaults where they fit small data)."""

    model: str = "vit_tiny"
    model_config: dict = field(default_factory=dict)  # e.g. {"modality": "map2d"}
    modality_options: dict = field(default_factory=dict)
    head: HeadConfig = HeadConfig()
    views: ViewConfig = ViewConfig()
    epochs: int = 10
    batch_size: int = 32  # per worker
    lr: float = 5e-4  # peak, after warm-up
    min_lr: float = 1e-6
    warmup_epochs: int = 1
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996  # EMA momentum, cosine-scheduled up to 1
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    center_momentum: float = 0.9
    clip_grad: float = 3.0
    freeze_last_layer: int = 1  # epochs
    steps_per_epoch: int = 1  # set by the driver from the row count
    amp: bool = True  # bf16 autocast on GPU
    shuffle_buffer: int = 256
    seed: int = 0
    fail_at_epoch: int | None = None  # test hook (loop._maybe_fail)
    fail_marker: str | None = None


def config_from_dict(config: dict) -> DinoConfig:
    config = dict(config)
    config["head"] = HeadConfig(**config["head"])
    views = dict(config["views"])
    views = {k: tuple(v) if isinstance(v, list) else v for k, v in views.items()}
    config["views"] = ViewConfig(**views)
    return DinoConfig(**config)


def modality_of(cfg: DinoConfig) -> str:
    from raysurvey.models import create_model

    with torch.device("meta"):
        model = create_model(cfg.model, **(dict(cfg.model_config) | {"num_classes": None}))
    (name,) = model.modalities
    return name


def build_models(cfg: DinoConfig) -> tuple[DINOModel, DINOModel, DINOLoss]:
    """Student, teacher (the student's copy, no gradients) and the loss with its centre."""
    student = DINOModel(cfg.model, cfg.model_config, cfg.head)
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    loss = DINOLoss(cfg.head.out_dim, cfg.student_temp, cfg.center_momentum)
    return student, teacher, loss


def decode_ok(table: pa.Table, options) -> pa.Table:
    """Decode a manifest block to grid flux; keep the rows that read (DDP workers must
    see equal shards, so unreadable rows are dropped before the split, not in a step)."""
    decoded = decode_table(table.select(["uri", "survey"]), options)
    keep = pc.equal(decoded.column("status"), STATUS_OK)
    return decoded.filter(keep).select(["flux", "survey"])


def unlabelled_rows(manifests: tuple[str, ...]) -> pa.Table:
    """uri + survey of every row of every manifest (labels, if any, are ignored)."""
    from raysurvey.train.data import read_manifest_table

    parts = [read_manifest_table(m).select(["uri", "survey"]) for m in manifests]
    return pa.concat_tables([p.cast(parts[0].schema) for p in parts])


def flux_dataset(rows: pa.Table, pipeline: PipelineConfig = TRAIN_PIPELINE):
    import ray.data

    blocks = manifest_blocks(rows, pipeline.decode_batch_size)
    return blocks.map_batches(
        decode_ok,
        fn_kwargs={"options": pipeline.decode},
        batch_format="pyarrow",
        batch_size=pipeline.decode_batch_size,
        num_cpus=pipeline.decode_cpus,
        compute=ray.data.TaskPoolStrategy(size=pipeline.decode_tasks)
        if pipeline.decode_tasks
        else None,
    )


def _views_to_tensors(views: list[np.ndarray], device) -> list[torch.Tensor]:
    from raysurvey.models.inputs import to_model_tensor

    return [to_model_tensor("simple", v).to(device, non_blocking=True) for v in views]


def dino_loop(config: dict) -> None:
    """Ray Train worker entry point."""
    import ray.train
    import ray.train.torch

    from raysurvey.train.loop import _maybe_fail

    cfg = config_from_dict(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(cfg.seed)
    device = ray.train.torch.get_device()
    use_amp = cfg.amp and device.type == "cuda"
    modality = modality_of(cfg)

    student, teacher, loss_fn = build_models(cfg)
    start_epoch, state = 1, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)
        student.load_state_dict(state["student"])
        teacher.load_state_dict(state["teacher"])
        loss_fn.load_state_dict(state["loss"])
        start_epoch = state["epoch"] + 1
    teacher.to(device)
    loss_fn.to(device)
    student = ray.train.torch.prepare_model(student)
    inner = student.module if hasattr(student, "module") else student
    optimizer = torch.optim.AdamW(param_groups(student), lr=cfg.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])

    total = cfg.epochs * cfg.steps_per_epoch
    lrs = cosine_schedule(
        cfg.lr, cfg.min_lr, total, cfg.warmup_epochs * cfg.steps_per_epoch, warmup_start=0.0
    )
    wds = cosine_schedule(cfg.weight_decay, cfg.weight_decay_end, total)
    momenta = cosine_schedule(cfg.momentum_teacher, 1.0, total)
    temps = teacher_temp_schedule(
        cfg.warmup_teacher_temp, cfg.teacher_temp, cfg.warmup_teacher_temp_epochs, cfg.epochs
    )
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start_epoch, cfg.epochs + 1):
        _maybe_fail(cfg, epoch, rank, world)
        rng = np.random.default_rng([cfg.seed, rank, epoch])
        temp = float(temps[epoch - 1])
        student.train()
        sums = np.zeros(3)  # loss * n, teacher entropy * n, n
        for i, batch in enumerate(
            shard.iter_batches(
                batch_size=cfg.batch_size,
                batch_format="numpy",
                local_shuffle_buffer_size=cfg.shuffle_buffer or None,
                local_shuffle_seed=cfg.seed + epoch + 1000 * rank if cfg.shuffle_buffer else None,
            )
        ):
            it = min((epoch - 1) * cfg.steps_per_epoch + i, total - 1)
            for g, group in enumerate(optimizer.param_groups):
                group["lr"] = lrs[it]
                if g == 0:
                    group["weight_decay"] = wds[it]
            options = cfg.modality_options.get(modality, {})
            images = make_views(batch["flux"], batch["survey"], modality, options, rng, cfg.views)
            views = _views_to_tensors(images, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, teacher_out = dino_forward(
                    student, teacher, loss_fn, views, cfg.views.n_global, temp
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad:
                clip_gradients(student, cfg.clip_grad)
            if epoch <= cfg.freeze_last_layer:
                cancel_last_layer_grads(student)
            optimizer.step()
            ema_update(teacher, inner, float(momenta[it]))
            with torch.no_grad():
                probs = torch.softmax((teacher_out.float() - loss_fn.center) / temp, dim=-1)
            loss_fn.update_center(teacher_out)
            n = len(batch["flux"])
            sums += (loss.item() * n, entropy(probs) * n, n)
        sums = _all_reduce(sums, device)
        metrics = {
            "epoch": epoch,
            "resumed_at_epoch": start_epoch,
            "train_loss": float(sums[0] / max(sums[2], 1)),
            "teacher_entropy": float(sums[1] / max(sums[2], 1)),
            "rows": int(sums[2]),
            "lr": float(lrs[min(epoch * cfg.steps_per_epoch, total) - 1]),
            "momentum": float(momenta[min(epoch * cfg.steps_per_epoch, total) - 1]),
            "teacher_temp": temp,
        }
        if rank == 0:  # progress for the job's log: a teacher entropy near log(out_dim)
            print(  # that does not fall says the teacher is not sharpening (not learning)
                f"dino: epoch {epoch}/{cfg.epochs}: loss {metrics['train_loss']:.4f}, teacher "
                f"entropy {metrics['teacher_entropy']:.3f} of {math.log(cfg.head.out_dim):.3f} "
                f"nats, lr {metrics['lr']:.2e}, momentum {metrics['momentum']:.4f}",
                flush=True,
            )
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                torch.save(
                    {
                        "student": inner.state_dict(),
                        "teacher": teacher.state_dict(),
                        "loss": loss_fn.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch,
                    },
                    os.path.join(tmp, STATE_FILE),
                )
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)


def _all_reduce(values: np.ndarray, device) -> np.ndarray:
    from raysurvey.train.loop import _all_reduce as reduce

    return reduce(values, device)


@dataclass(frozen=True)
class PretrainSpec:
    manifests: tuple[str, ...]
    storage: str
    name: str
    out: str
    dino: DinoConfig = DinoConfig()
    num_workers: int = 2
    cpus_per_worker: float = 0.5
    use_gpu: bool = False
    max_failures: int = 1
    cache: bool | None = None  # None: when the decoded flux fits CACHE_SHARE of the store
    export: str = "student"  # or "teacher" (the paper evaluates the teacher)
    pipeline: PipelineConfig = TRAIN_PIPELINE


def pretrain(spec: PretrainSpec) -> dict:
    """Run DINO, write the backbone to ``spec.out`` (``save_pretrained``), return a summary."""
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from raysurvey.train.run import absolute_uri, with_absolute_weights, worker_scaling

    if spec.export not in ("student", "teacher"):
        raise ValueError(f"export must be 'student' or 'teacher', not {spec.export!r}")
    storage = absolute_uri(spec.storage)
    dino = dataclasses.replace(
        spec.dino, model_config=with_absolute_weights(spec.dino.model_config)
    )
    rows = unlabelled_rows(spec.manifests)
    n = rows.num_rows
    per_worker = math.ceil(n / spec.num_workers)
    cfg = dataclasses.replace(dino, steps_per_epoch=max(1, math.ceil(per_worker / dino.batch_size)))
    ds = flux_dataset(rows, spec.pipeline)
    n_pix = spec.pipeline.decode.n_pix
    estimate = n * n_pix * 4
    budget = CACHE_SHARE * ray.cluster_resources().get("object_store_memory", 0.0)
    cache = spec.cache if spec.cache is not None else estimate <= budget
    if cache:
        ds = ds.materialize()
    print(
        f"dino: {cfg.model} on {modality_of(cfg)}: {n} spectra from {len(spec.manifests)} "
        f"manifest(s), {cfg.epochs} epochs x {cfg.steps_per_epoch} steps of {cfg.batch_size} "
        f"a worker, {spec.num_workers} workers, {cfg.views.n_global} global + "
        f"{cfg.views.n_local} local views, lr {cfg.lr:g}, head {cfg.head.out_dim}, "
        f"flux {'cached' if cache else 'streamed'} (~{estimate / 2**20:,.0f} MiB)",
        flush=True,
    )
    trainer = TorchTrainer(
        dino_loop,
        train_loop_config=dataclasses.asdict(cfg),
        scaling_config=worker_scaling(spec),
        run_config=ray.train.RunConfig(
            name=spec.name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": ds},
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)
    provenance = {
        "method": "dino",
        "export": spec.export,
        "manifests": list(spec.manifests),
        "rows": n,
        "run": spec.name,
        "storage": storage,
        "epoch": state["epoch"],
        "config": dataclasses.asdict(cfg),
        "last": {k: v for k, v in result.metrics.items() if isinstance(v, int | float)},
    }
    export_backbone(state[spec.export], cfg, spec.out, provenance)
    return provenance | {"out": spec.out}


def export_backbone(state_dict: dict, cfg: DinoConfig, out: str, provenance: dict) -> None:
    """The ViT backbone of a DINO state dict, written with ``save_pretrained`` (+ dino.json)
    to a local directory or a remote URI."""
    import fsspec

    model = DINOModel(cfg.model, cfg.model_config, cfg.head)
    model.load_state_dict(state_dict)
    vit = model.backbone.backbone  # the transformers ViTModel
    fs, path = fsspec.core.url_to_fs(out)
    local = fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol
    with tempfile.TemporaryDirectory() as tmp:
        target = path if local else tmp
        os.makedirs(target, exist_ok=True)
        vit.save_pretrained(target)
        with open(os.path.join(target, PROVENANCE_FILE), "w") as f:
            json.dump(provenance, f, indent=2, default=str)
        if not local:
            fs.put(tmp + "/", path, recursive=True)
