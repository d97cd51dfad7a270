"""The command line shared by ``tune/sweep_*.py``: release, sizes, seeds, resources,
storage and ``--resume``; each script adds its choices."""

from __future__ import annotations

import argparse
import json
import sys
import time

from raysurvey.labels import LABEL_SETS
from raysurvey.train.sweep import Choice, SweepError, SweepSpec, run_sweep


def sweep_parser(description: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", required=True, help="release manifest.parquet (path or s3://)")
    p.add_argument("--storage", required=True, help="sweep root (path or s3://)")
    p.add_argument("--name", default=name, help=f"sweep name under --storage (default {name})")
    p.add_argument("--labels", default="stellar8", choices=sorted(LABEL_SETS))
    p.add_argument("--per-class", type=int, help="at most N spectra of each label")
    p.add_argument("--min-snr", type=float, help="keep spectra with snr_i above this")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "adagrad", "sgd"])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated split/init seeds")
    p.add_argument("--choices", help="only these choices (comma-separated)")
    p.add_argument("--num-workers", type=int, default=1, help="Ray Train workers per trial")
    p.add_argument("--cpus-per-worker", type=float, default=0.9)
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--max-concurrent", type=int, help="default: what the cluster fits")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    return p


def spec_from_args(args, choices: list[Choice], **extra) -> SweepSpec:
    if args.choices:
        wanted = [c.strip() for c in args.choices.split(",") if c.strip()]
        known = {c.name: c for c in choices}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise SweepError(f"unknown choices {unknown}; known: {', '.join(known)}")
        choices = [known[w] for w in wanted]
    return SweepSpec(
        name=args.name,
        storage=args.storage,
        manifest=args.manifest,
        choices=tuple(choices),
        seeds=tuple(int(s) for s in args.seeds.split(",") if s.strip()),
        labels=args.labels,
        per_class=args.per_class,
        min_snr=args.min_snr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        num_workers=args.num_workers,
        cpus_per_worker=args.cpus_per_worker,
        use_gpu=args.use_gpu,
        **extra,
    )


def run_from_args(args, spec: SweepSpec) -> int:
    import ray

    try:
        if not ray.is_initialized():
            ray.init(address=args.address)  # RAY_ADDRESS under `ray job submit`
        start = time.perf_counter()
        summary = run_sweep(spec, resume=args.resume, concurrent=args.max_concurrent)
    except SweepError as exc:
        print(f"{spec.name}: {exc}", file=sys.stderr)
        return 2
    with open_text(f"{spec.root}/table.md") as f:
        print(f.read())
    best = summary["best"]
    print(
        f"{spec.name}: {summary['trials']} trials finished ({summary['trials_failed']} failed), "
        f"{summary['concurrent']} at a time, {time.perf_counter() - start:.0f} s; "
        f"best by validation: {json.dumps(best)}"
    )
    return 0 if summary["trials_failed"] == 0 else 1


def open_text(uri: str):
    import fsspec

    return fsspec.open(uri, "r")
