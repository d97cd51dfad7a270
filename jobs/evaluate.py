"""Evaluate a model bundle on a release: metrics.json, confusion matrix, accuracy per S/N.

    python jobs/evaluate.py --bundle /tmp/bundles/coord-s0 --manifest REL/manifest.parquet \\
        --out /tmp/eval/coord-s0 [--split test|val|train|all|heldout]

By default the test split of the seed the bundle was trained with (held-out rows),
with the bundle's S/N cut; ``--min-snr 0`` scores every S/N (the per-S/N table), and
``--split heldout --min-snr 0`` every spectrum the model never trained on (DRC-Net's
protocol: trained at S/N_r > 30, tested at every S/N).
Writes metrics.json (top-level accuracy, macro_f1, per_class), confusion_matrix.png,
accuracy_by_snr.png/.csv and per_class.md (the audio-fusion paper's Table 6 layout).

Redshifts (template fitting, no bundle; docs/redshift.md):

    python jobs/evaluate.py --task redshift --templates ../shared/templates/redrock \
        --manifest ../shared/realdata/MANIFEST.csv --out /tmp/eval/z-real [--class-source unknown]
"""

from __future__ import annotations

import argparse
import sys

try:
    from raysurvey.driver_exit import run_driver
    from raysurvey.train.evaluate import evaluate, score_name
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle directory (path or s3://); not for --task redshift")
    p.add_argument(
        "--manifest",
        required=True,
        help="manifest.parquet (path or s3://); for --task redshift also a real MANIFEST.csv",
    )
    p.add_argument(
        "--task",
        default="classify",
        choices=["classify", "redshift"],
        help="redshift: template-fitting redshifts against true_z or the pipeline z "
        "(docs/redshift.md)",
    )
    p.add_argument("--templates", help="Redrock template directory (--task redshift)")
    p.add_argument(
        "--class-source",
        default="given",
        choices=["given", "pipeline", "unknown"],
        help="--task redshift: class handed to the fitter (the manifest's reference class, "
        "the pipeline label, or none: every class fitted)",
    )
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
    if args.task == "redshift":
        return _redshift(args)
    if not args.bundle:
        p.error("--bundle is required for --task classify")

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
        headline = (
            f"{score_name(result)} {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
            f"(against {result['reference']})"
        )
        after = result.get("ece_after")
        headline += f", ECE (15 bins) {100 * result['ece_before']:.2f} % before calibration" + (
            f", {100 * after:.2f} % after" if after is not None else " (bundle not calibrated)"
        )
    else:
        headline = f"R^2 {result['r2']}, RMSE {result['rmse']}"
    print(
        f"evaluate: {result['model_name']} {result['model_version']} on {result['n_evaluated']} "
        f"{args.split} spectra ({result['n_unreadable']} unreadable): {headline}; "
        f"report in {args.out}"
    )
    return 0


def _redshift(args) -> int:
    from raysurvey.train.evaluate import evaluate_redshift

    result = evaluate_redshift(
        args.manifest, args.out, templates_dir=args.templates, class_source=args.class_source
    )
    both = result["per_class"].get("GALAXY+QSO", {})
    headline = (
        f"|dz|/(1+z) < 0.003 for {both.get('frac_within', float('nan')):.4f} of "
        f"{both.get('n', 0)} galaxies+QSOs"
    )
    print(
        f"evaluate --task redshift on {result['n_evaluated']} spectra "
        f"({result['n_unreadable']} unreadable): {headline} (against {result['reference']}), "
        f"{result['cpu_ms_per_spectrum']:.2f} CPU ms a spectrum; report in {args.out}"
    )
    return 0


if __name__ == "__main__":
    run_driver(main)
