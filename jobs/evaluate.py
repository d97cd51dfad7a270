"""Evaluate a model bundle on a release: metrics.json, confusion matrix, accuracy per S/N.

    python jobs/evaluate.py --bundle /tmp/bundles/coord-s0 --manifest REL/manifest.parquet \\
        --out /tmp/eval/coord-s0 [--split test|val|train|all|heldout]

By default the test split of the seed the bundle was trained with (held-out rows),
with the bundle's S/N cut; ``--min-snr 0`` scores every S/N (the per-S/N table), and
``--split heldout --min-snr 0`` every spectrum the model never trained on (DRC-Net's
protocol: trained at S/N_r > 30, tested at every S/N).
Writes metrics.json (top-level accuracy, macro_f1, per_class), confusion_matrix.png,
accuracy_by_snr.png/.csv and per_class.md (the audio-fusion paper's Table 6 layout).
"""

from __future__ import annotations

import argparse
import sys

from raysurvey.train.evaluate import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True, help="bundle directory (path or s3://)")
    p.add_argument("--manifest", required=True, help="manifest.parquet (path or s3://)")
    p.add_argument("--out", required=True, help="report directory (path or s3://)")
    p.add_argument("--split", default="test", choices=["test", "val", "train", "all", "heldout"])
    p.add_argument(
        "--min-snr",
        type=float,
        help="S/N cut (default: the bundle's training cut; 0: every S/N)",
    )
    p.add_argument("--snr-column", help="S/N column of the cut and bins (default: the bundle's)")
    p.add_argument(
        "--snr-bins", help="comma-separated bin edges, e.g. 0,10,20,30,inf (default: the bundle's)"
    )
    args = p.parse_args(argv)
    bins = [float(x) for x in args.snr_bins.split(",")] if args.snr_bins else None

    import ray

    if not ray.is_initialized():
        ray.init()  # RAY_ADDRESS (set by `ray job submit`) or a local cluster
    result = evaluate(
        args.bundle,
        args.manifest,
        args.out,
        split=args.split,
        min_snr=args.min_snr,
        snr_column=args.snr_column,
        snr_bins=bins,
    )
    if "accuracy" in result:
        headline = f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}"
    else:
        headline = f"R^2 {result['r2']}, RMSE {result['rmse']}"
    print(
        f"evaluate: {result['model_name']} {result['model_version']} on {result['n_evaluated']} "
        f"{args.split} spectra ({result['n_unreadable']} unreadable): {headline}; "
        f"report in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
