"""DINO self-supervised pretraining of the ViT on unlabelled spectra, with Ray Train.

    python jobs/pretrain_dino.py --manifest UNLABELLED/manifest.parquet \\
        --manifest REAL/manifest.parquet --model vit_tiny --modality map2d --epochs 10 \\
        --num-workers 2 --storage /tmp/runs --name dino-tiny --out /tmp/dino-tiny
    python jobs/train.py --manifest REL/manifest.parquet --model vit_tiny \\
        --pretrained /tmp/dino-tiny ...        # fine-tune it; the bundle records the source
    ray job submit --working-dir . -- python jobs/pretrain_dino.py ... --model vit_small \\
        --use-gpu --num-workers 8 --storage s3://bucket/runs --out s3://bucket/dino-vits

Labels in the manifests are ignored. A student and an EMA teacher ViT with DINO heads
learn from 2 global and ``--local-crops`` local views per spectrum (wavelength crops
resampled to the full grid, flux-scale jitter and noise; raysurvey/train/dino_views.py).
A checkpoint per epoch goes to ``--storage``/``--name``: rerunning the same command
resumes, and a worker that dies is replaced from it (``--max-failures``). The student's
backbone (``--export teacher`` for the teacher's) is written to ``--out`` with
``save_pretrained`` (config.json + model.safetensors + dino.json, the provenance).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

try:
    from raysurvey.data.features import parse_options
    from raysurvey.driver_exit import run_driver
    from raysurvey.train.dino import HeadConfig
    from raysurvey.train.dino_run import DinoConfig, PretrainSpec, pretrain
    from raysurvey.train.dino_views import ViewConfig
    from raysurvey.train.pretraining_encoding import PRETRAIN_MODALITY_DEFAULTS
    from raysurvey.train.run import absolute_uri
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )

MODELS = ("vit_tiny", "vit_small", "vit")
MODALITIES = ("map2d", "simple", "overlap")


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", action="append", required=True, help="repeat for several")
    p.add_argument("--model", default="vit_tiny", choices=MODELS)
    p.add_argument("--modality", default="map2d", choices=MODALITIES)
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME.OPTION=VALUE",
        help="modality option (default map2d.variant=normalised: scale-free colours; "
        "jobs/train.py --pretrained adopts what the backbone was pretrained on)",
    )
    p.add_argument("--pretrained", help="start from these ViT weights (hub id or directory)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="per worker")
    p.add_argument("--lr", type=float, default=5e-4, help="peak lr after the warm-up epoch")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--momentum-teacher", type=float, default=0.996)
    p.add_argument("--teacher-temp", type=float, default=0.04)
    p.add_argument("--warmup-teacher-temp", type=float, default=0.04)
    p.add_argument("--warmup-teacher-temp-epochs", type=int, default=0)
    p.add_argument("--out-dim", type=int, default=1024, help="DINO head prototypes")
    p.add_argument("--local-crops", type=int, default=4)
    p.add_argument("--global-scale", type=_pair, default=(0.5, 1.0), metavar="LO,HI")
    p.add_argument("--local-scale", type=_pair, default=(0.15, 0.4), metavar="LO,HI")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--cpus-per-worker", type=float, default=0.5)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--max-failures", type=int, default=1)
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, help="default: if it fits")
    p.add_argument("--storage", required=True, help="checkpoint root (path or s3://)")
    p.add_argument("--name", required=True, help="run name (same name: resume)")
    p.add_argument("--out", required=True, help="directory for the save_pretrained backbone")
    p.add_argument("--export", default="student", choices=["student", "teacher"])
    p.add_argument("--fail-at-epoch", type=int, help=argparse.SUPPRESS)  # test hook
    p.add_argument("--fail-marker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    model_config = {"modality": args.modality}
    for item in args.model_option:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--model-option wants KEY=VALUE, got {item!r}")
        model_config[key] = _value(value)
    if args.pretrained:
        model_config["pretrained"] = args.pretrained
    options = parse_options(args.option)
    for key, value in PRETRAIN_MODALITY_DEFAULTS.get(args.modality, {}).items():
        options.setdefault(args.modality, {}).setdefault(key, value)
    dino = DinoConfig(
        model=args.model,
        model_config=model_config,
        modality_options=options,
        head=HeadConfig(out_dim=args.out_dim),
        views=ViewConfig(
            n_local=args.local_crops, global_scale=args.global_scale, local_scale=args.local_scale
        ),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_epochs=args.warmup_epochs,
        momentum_teacher=args.momentum_teacher,
        teacher_temp=args.teacher_temp,
        warmup_teacher_temp=args.warmup_teacher_temp,
        warmup_teacher_temp_epochs=args.warmup_teacher_temp_epochs,
        seed=args.seed,
        fail_at_epoch=args.fail_at_epoch,
        fail_marker=args.fail_marker,
    )

    import ray

    if not ray.is_initialized():
        ray.init()  # RAY_ADDRESS (set by `ray job submit`) or a local cluster
    start = time.perf_counter()
    summary = pretrain(
        PretrainSpec(
            manifests=tuple(args.manifest),
            storage=absolute_uri(args.storage),
            name=args.name,
            out=args.out,
            dino=dino,
            num_workers=args.num_workers,
            cpus_per_worker=args.cpus_per_worker,
            use_gpu=args.use_gpu,
            max_failures=args.max_failures,
            cache=args.cache,
            export=args.export,
        )
    )
    last = summary["last"]
    print(
        f"dino: {args.name}: epoch {summary['epoch']}, "
        f"loss {last.get('train_loss', float('nan')):.4f}, "
        f"teacher entropy {last.get('teacher_entropy', float('nan')):.3f}, "
        f"{time.perf_counter() - start:.1f} s; backbone ({args.export}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    run_driver(main)
