"""Train a registered model on a release with Ray Train; export the best as a bundle.

    python jobs/train.py --manifest REL/manifest.parquet --model spec_cnn --attention coord \\
        --labels stellar8 --epochs 30 --num-workers 2 --storage /tmp/runs --name coord-s0 \\
        --bundle-out /tmp/bundles/coord-s0
    python jobs/train.py --manifest REL2D/manifest.parquet --preset macnet ...  # 2D + gri
    python jobs/train.py --manifest FGK2D/manifest.parquet --preset drcnet ...  # F/G/K
    ray job submit --working-dir . -- python jobs/train.py ... --use-gpu --num-workers 8 \\
        --storage s3://bucket/runs

The manifest is split 8:1:1 by object id (``--split-seed``); the training split is
balanced by replication (``--balance-to``: the default preset's ``largest``, up to the
largest class; ``--preset audio_fusion``: 6000 a class, as published; 0: off), and the
modalities are computed once and kept when they fit the object store
(``--[no-]cache-features``): the first lines printed say both. Workers
read shards of the streaming pipeline (modalities computed by CPU actors while they
train), DDP via ``prepare_model``, bf16 autocast on GPUs. A checkpoint per epoch goes
to ``--storage``/``--name``; rerunning the same command resumes from the last one,
and a worker that dies is replaced from it (``--max-failures``). The summary (best
epoch, metrics, class counts) is printed and written to ``STORAGE/NAME/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

try:
    import fsspec

    from raysurvey.data.features import parse_options
    from raysurvey.driver_exit import run_driver
    from raysurvey.labels import LABEL_SETS
    from raysurvey.models import list_models
    from raysurvey.train.data import TASKS, parse_manifest_arg
    from raysurvey.train.presets import BALANCE_LARGEST, DEFAULT_PRESET, PRESETS
    from raysurvey.train.run import RunSpec, absolute_uri, fit
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def model_config_from_args(args: argparse.Namespace) -> dict:
    config = {}
    for item in args.model_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"train: --model-option wants KEY=VALUE, got {item!r}")
        config[key] = _value(value)
    if args.attention:
        config["attention"] = args.attention
    if args.pretrained:
        config["pretrained"] = args.pretrained
    if args.modalities:
        names = [m.strip() for m in args.modalities.split(",") if m.strip()]
        if args.model.startswith("fusion"):
            config["modalities"] = names
        elif len(names) != 1:
            raise SystemExit(f"train: {args.model} reads one modality, got {names}")
        elif args.model == "audio_cnn":
            config["feature"] = names[0]
        else:
            config["modality"] = names[0]
    return config


def parse_class_weights(text: str | None) -> dict | None:
    """``"GALAXY=1,QSO=3,STAR=1"`` -> {label: weight}; "none" -> {} (off); None: preset's."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return {}
    weights = {}
    for item in text.split(","):
        label, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"train: --class-weights wants LABEL=WEIGHT,..., got {item!r}")
        weights[label.strip()] = float(value)
    return weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--manifest",
        action="append",
        required=True,
        metavar="URI[@WEIGHT]",
        help="manifest.parquet (path or s3://); repeat to train on several, e.g. a synthetic "
        "release and real spectra (`raysurvey manifest`), each with a training sampling "
        "weight (default 1)",
    )
    p.add_argument("--model", choices=list_models(), help="default: the preset's (macnet, drcnet)")
    p.add_argument("--modalities", help="comma-separated (fusion) or the one modality read")
    p.add_argument("--attention", help="spec_cnn / fusion attention (none, se, eca, ...)")
    p.add_argument("--pretrained", help="ViT weights: hub id or local directory")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME.OPTION=VALUE",
        help="modality option, e.g. map2d.variant=spectromer",
    )
    p.add_argument(
        "--labels", choices=sorted(LABEL_SETS), help="default: the preset's, else stellar8"
    )
    p.add_argument("--task", default="classify", choices=TASKS)
    p.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="see docs/training.md"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--optimizer", choices=["adam", "adamw", "adagrad", "sgd"])
    p.add_argument("--patience", type=int, help="early stopping on validation loss")
    p.add_argument(
        "--balance-to",
        type=lambda v: v if v == BALANCE_LARGEST else int(v),
        help=f"replicate train classes to N rows, or to the {BALANCE_LARGEST} class (0: off; "
        "default: the preset's)",
    )
    p.add_argument("--min-snr", type=float, help="keep spectra with S/N above this")
    p.add_argument("--snr-column", help="S/N column of the cut (default: the preset's, snr_i)")
    p.add_argument(
        "--class-weights",
        help="loss weight per label, e.g. GALAXY=1,QSO=3,STAR=1 ('none': off; "
        "default: the preset's)",
    )
    p.add_argument(
        "--recalibrate-bn",
        action=argparse.BooleanOptionalAction,
        help="re-estimate BatchNorm statistics without dropout each epoch (default: the "
        "preset's; on for macnet)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="augment the flux1d input of the training split (tilt, scale, masked chunk, "
        "noise, spikes, shift; docs/real-data.md)",
    )
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--cpus-per-worker", type=float, default=0.5)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--max-failures", type=int, default=1)
    p.add_argument(
        "--cache-features",
        action=argparse.BooleanOptionalAction,
        help="compute modalities once and keep them in the object store (default: when "
        "they take at most a quarter of it)",
    )
    p.add_argument("--storage", required=True, help="checkpoint root (path or s3://)")
    p.add_argument("--name", required=True, help="run name (same name: resume)")
    p.add_argument("--bundle-out", help="where the best model's bundle goes")
    p.add_argument("--fail-at-epoch", type=int, help=argparse.SUPPRESS)  # test hook
    p.add_argument("--fail-marker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    model = args.model or PRESETS[args.preset].model
    if model is None:
        p.error(f"--model is required with --preset {args.preset}")
    args.model = model

    try:
        manifests = [parse_manifest_arg(m) for m in args.manifest]
    except ValueError as error:
        p.error(str(error))

    import ray

    if not ray.is_initialized():
        ray.init()  # RAY_ADDRESS (set by `ray job submit`) or a local cluster
    start = time.perf_counter()
    summary = fit(
        RunSpec(
            manifest=tuple(m for m, _ in manifests),
            manifest_weights=tuple(w for _, w in manifests),
            model=args.model,
            storage=absolute_uri(args.storage),
            name=args.name,
            labels=args.labels,
            task=args.task,
            model_config=model_config_from_args(args),
            modality_options=parse_options(args.option),
            preset=args.preset,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            optimizer=args.optimizer,
            patience=args.patience,
            balance_to=args.balance_to,
            min_snr=args.min_snr,
            snr_column=args.snr_column,
            class_weights=parse_class_weights(args.class_weights),
            recalibrate_bn=args.recalibrate_bn,
            augment=args.augment,
            split_seed=args.split_seed,
            num_workers=args.num_workers,
            cpus_per_worker=args.cpus_per_worker,
            use_gpu=args.use_gpu,
            max_failures=args.max_failures,
            cache_features=args.cache_features,
            bundle_out=args.bundle_out,
            fail_at_epoch=args.fail_at_epoch,
            fail_marker=args.fail_marker,
        )
    )
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    fs, path = fsspec.core.url_to_fs(args.storage.rstrip("/") + "/" + args.name)
    fs.makedirs(path, exist_ok=True)
    with fs.open(path + "/summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    best = summary["best"]
    score = {k: v for k, v in best.items() if k in ("val_accuracy", "val_macro_f1", "val_r2")}
    print(
        f"train: {args.name}: best epoch {best.get('epoch')} of {summary['last'].get('epoch')}, "
        f"{score}, {summary['wall_s']} s"
    )
    if summary["bundle"]:
        print(f"train: bundle {summary['bundle']['uri']} (version {summary['bundle']['version']})")
    return 0


if __name__ == "__main__":
    run_driver(main)
