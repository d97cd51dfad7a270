"""Classify a whole release into an exactly-once, resumable Parquet catalog.

    python jobs/classify_release.py --release /data/dr10/manifest.parquet \\
        --bundle s3://models/class3 --bundle s3://models/stellar8 --output s3://cat/dr10-v1
    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/classify_release.py --release s3://lamost/dr10/fits/ --bundle ... --output ...

``--release``: a manifest Parquet, or a directory / s3:// prefix of FITS files (then
ids, coordinates and labels come from the headers). ``--bundle`` twice chains a
class3 bundle and a stellar8 bundle (``pred_subclass`` for predicted stars). Rerunning
the same command continues where a killed run stopped; the catalog ends with exactly
one row per spectrum (checked, and the job fails if not). ``--templates DIR`` (default
$RAYSURVEY_TEMPLATES) fits ``z_pred`` / ``z_pred_err`` with the Redrock templates.
docs/catalog.md has the columns; ``raysurvey query OUTPUT "SQL"`` queries the result.
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    from raysurvey.driver_exit import run_driver
    from raysurvey.infer import (
        CatalogCheckError,
        CatalogPlanError,
        CatalogStoreError,
        ClassifyConfig,
        ReleaseError,
        classify_release,
    )
    from raysurvey.infer.query import catalog_summary
    from raysurvey.models.bundle import BundleError
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="manifest.parquet, directory or s3://")
    parser.add_argument(
        "--bundle",
        action="append",
        required=True,
        help="model bundle URI; give twice for class3 then stellar8",
    )
    parser.add_argument("--output", required=True, help="catalog directory (path or s3://)")
    parser.add_argument("--chunk-size", type=int, default=20_000, help="rows per file/commit")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per predictor batch")
    parser.add_argument(
        "--num-gpus-per-actor",
        type=float,
        help="GPU share per predictor actor (default: 1 when the cluster has GPUs, else CPU)",
    )
    parser.add_argument("--predict-actors", type=int, help="predictor actors (default: auto)")
    parser.add_argument(
        "--modality-actors", type=int, help="most modality actors (default: CPUs / 4 at start)"
    )
    parser.add_argument("--predict-cpus", type=float, default=0.5, help="CPUs per predictor")
    parser.add_argument(
        "--pipeline",
        choices=("auto", "fused", "split"),
        default="auto",
        help="fused: decode + modalities + predict in one pool of 1-CPU actors (the "
        "CPU path); split: decode tasks, modality actors, predictor actors (feeds GPUs); "
        "auto: fused when the predictors run on CPU",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace another catalog there")
    parser.add_argument("--skymap", help="also write a sky-map PNG of the result here")
    parser.add_argument("--address", help="Ray address (default: auto / a local Ray)")
    parser.add_argument(
        "--templates",
        default=os.environ.get("RAYSURVEY_TEMPLATES"),
        help="Redrock template directory (path or s3://) for the z_pred fit "
        "(default: $RAYSURVEY_TEMPLATES; without it z_pred comes only from a z bundle)",
    )
    parser.add_argument(
        "--no-redshift", action="store_true", help="do not fit z_pred even if templates are set"
    )
    parser.add_argument(
        "--no-template-check",
        action="store_true",
        help="fit only each row's pred_class (half the redshift cost; no template_class and "
        "no TEMPLATE_DISAGREES bit)",
    )
    args = parser.parse_args(argv)
    templates = None if args.no_redshift else args.templates

    import ray

    if args.address:
        ray.init(address=args.address)
    config = ClassifyConfig(
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        num_gpus_per_actor=args.num_gpus_per_actor,
        predict_actors=args.predict_actors,
        modality_actors=args.modality_actors,
        predict_cpus=args.predict_cpus,
        overwrite=args.overwrite,
        fused={"auto": None, "fused": True, "split": False}[args.pipeline],
    )
    try:
        result = classify_release(
            args.release,
            args.bundle,
            args.output,
            config,
            templates=templates,
            template_check=not args.no_template_check,
        )
    except CatalogCheckError as exc:
        print(f"classify_release: FAILED CHECK: {exc}", file=sys.stderr)
        return 2
    except (BundleError, ReleaseError, CatalogStoreError, CatalogPlanError) as exc:
        print(f"classify_release: {exc}", file=sys.stderr)
        return 2
    print(
        f"classify_release: {result.rows_written:,} spectra in {result.chunks_written} new "
        f"chunks ({result.chunks_skipped} committed before) in {result.seconds:.1f} s, "
        f"{result.rate:,.1f} spectra/s -> {result.output}"
    )
    if result.duplicates_dropped:
        print(f"classify_release: {result.duplicates_dropped} re-delivered rows dropped")
    print("\n".join(result.check.lines()))
    print()
    print(catalog_summary(args.output, skymap=args.skymap))
    return 0


if __name__ == "__main__":
    run_driver(main)
