"""Materialise modalities of a release to Parquet shards for reuse by training.

    python jobs/build_features.py --manifest /data/rel/manifest.parquet \\
        --modalities flux1d,map2d,mel --out s3://bucket/features/rel-v1
    ray job submit --working-dir . -- python jobs/build_features.py ...

One output row per manifest row (errors included: ``status="error"``, the reason in
``error``, modality columns null). Tensor columns use Arrow's canonical
``fixed_shape_tensor`` type. Ray Data shows progress while it runs; a summary with
counts and throughput is printed at the end. An existing non-empty ``--out`` is an
error unless ``--overwrite`` (Ray's writer would otherwise append a second copy).
"""

from __future__ import annotations

import argparse
import sys
import time

try:
    import fsspec
    import pyarrow.dataset as pads
    import ray

    from raysurvey.data import PipelineConfig, build_dataset, output_columns
    from raysurvey.data.features import check_modalities, parse_options
    from raysurvey.data.write import nullify_errors
    from raysurvey.driver_exit import run_driver
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )


def _prepare_output(out: str, overwrite: bool) -> None:
    fs, path = fsspec.core.url_to_fs(out)
    if fs.exists(path) and fs.ls(path):
        if not overwrite:
            raise SystemExit(f"build_features: {out} exists and is not empty (use --overwrite)")
        fs.rm(path, recursive=True)


def _count(out: str) -> tuple[int, int]:
    fs, path = fsspec.core.url_to_fs(out)
    dataset = pads.dataset(path, filesystem=fs, format="parquet")
    status = dataset.to_table(columns=["status"]).column("status").to_pylist()
    return len(status), sum(s != "ok" for s in status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, help="manifest.parquet (path or s3://)")
    parser.add_argument("--modalities", required=True, help="comma-separated, e.g. flux1d,mel")
    parser.add_argument("--out", required=True, help="output directory (path or s3://)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME.OPTION=VALUE",
        help="modality option, e.g. map2d.variant=spectromer (repeatable)",
    )
    parser.add_argument("--columns", help="manifest columns to carry (default: all)")
    parser.add_argument("--keep-flux", action="store_true", help="also write the grid flux")
    parser.add_argument("--limit", type=int, help="only the first N manifest rows")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batch per stage")
    parser.add_argument("--max-actors", type=int, help="modality actors (default: CPUs / 4)")
    parser.add_argument("--rows-per-file", type=int, default=2000, help="rows per Parquet shard")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--address", help="Ray cluster address (default: auto / local)")
    args = parser.parse_args(argv)

    names = check_modalities([m.strip() for m in args.modalities.split(",") if m.strip()])
    options = parse_options(args.option)
    _prepare_output(args.out, args.overwrite)
    ray.init(address=args.address, ignore_reinit_error=True)
    config = PipelineConfig(
        decode_batch_size=args.batch_size,
        modality_batch_size=args.batch_size,
        max_actors=args.max_actors,
    )
    columns = args.columns.split(",") if args.columns else None
    start = time.perf_counter()
    ds = build_dataset(
        args.manifest,
        names,
        options,
        columns=columns,
        keep_flux=args.keep_flux,
        config=config,
        limit=args.limit,
    )
    tensors = output_columns(names) + (["flux"] if args.keep_flux else [])
    ds = ds.map_batches(nullify_errors, fn_kwargs={"columns": tensors}, batch_format="pyarrow")
    ds.write_parquet(args.out, min_rows_per_file=args.rows_per_file)
    elapsed = time.perf_counter() - start
    rows, errors = _count(args.out)
    print(
        f"build_features: {rows} rows ({errors} with status=error) of "
        f"{', '.join(output_columns(names))} -> {args.out} in {elapsed:.1f} s "
        f"({rows / elapsed:.1f} spectra/s)"
    )
    return 0


if __name__ == "__main__":
    run_driver(main)
