"""The ``raysurvey`` command line (also ``python -m raysurvey.cli``).

Subcommands are small functions registered in ``COMMANDS``; later stages add theirs
(synth, query, ...) the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from raysurvey import __version__


def cmd_read(args: argparse.Namespace) -> int:
    """Read survey files (paths or URIs) and print one summary row each."""
    from raysurvey.io import SpectrumReadError, read_spectrum
    from raysurvey.summary import error_row, format_table, spectrum_row

    rows, failures = [], 0
    for source in args.sources:
        name = os.path.basename(source.rstrip("/")) or source
        try:
            rows.append(spectrum_row(name, read_spectrum(source)))
        except SpectrumReadError as exc:
            failures += 1
            rows.append(error_row(name, exc))
    print(format_table(rows))
    print(f"\n{len(rows) - failures} read, {failures} failed")
    return 1 if failures else 0


def cmd_readers(args: argparse.Namespace) -> int:
    """List the registered survey layouts and 2D product layouts in the order they are tried."""
    from raysurvey.io import list_product_readers, list_readers

    for reader in list_readers():
        print(f"{reader.name:14s} {reader.survey:7s} {reader.description}")
    for product in list_product_readers():
        print(f"{product.name:14s} {product.product:7s} {product.description}")
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    """Write one example file per layout (plain and gzip), read them back, summarise."""
    from raysurvey.io.examples import write_examples

    directory = args.out or tempfile.mkdtemp(prefix="raysurvey-examples-")
    paths = write_examples(directory)
    print(f"raysurvey {__version__}: {len(paths)} example files in {directory}\n")
    return cmd_read(argparse.Namespace(sources=paths))


def synth_config(args: argparse.Namespace):
    """The ``SynthConfig`` of parsed ``raysurvey synth`` options (``add_synth_arguments``;
    shared with jobs/make_release.py); says where the spectra come from."""
    from raysurvey.synth import SynthConfig, parse_classes, resolve_templates

    templates = resolve_templates(args.templates)
    source = f"Redrock templates in {templates}" if templates else "the built-in physical model"
    print(f"synth: {args.n} spectra -> {args.out} from {source}", file=sys.stderr)
    if not templates:
        print(
            "synth: no --templates and no RAYSURVEY_TEMPLATES: spectra come from the built-in "
            "physical model, not from real-data-derived templates",
            file=sys.stderr,
        )
    return SynthConfig(
        n=args.n,
        out=args.out,
        templates=templates,
        survey=args.survey,
        classes=parse_classes(args.classes),
        mix=args.mix,
        seed=args.seed,
        gzip=args.gzip,
        lamost_layout=args.lamost_layout,
        sdss_hdu=args.sdss_hdu,
        label_noise=args.label_noise,
        snr_median=args.snr_median,
        snr_sigma=args.snr_sigma,
        snr_min=args.snr_min,
        snr_max=args.snr_max,
        realism=args.realism,
        with_2d=args.with_2d,
        with_photometry=args.with_photometry,
        fibre_contamination=args.fibre_contamination,
    )


_synth_config = synth_config  # the old private name (tests/test_synth_2d.py imports it)


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``raysurvey synth`` (shared with jobs/make_release.py)."""
    from raysurvey.synth.config import (
        LAMOST_LAYOUT_CHOICES,
        MIXES,
        SDSS_HDU_CHOICES,
        SURVEYS,
    )

    parser.add_argument("--n", type=int, required=True, help="number of spectra")
    parser.add_argument("--out", required=True, help="output directory (path, file:// or s3://)")
    parser.add_argument(
        "--templates", help="Redrock template directory (default: $RAYSURVEY_TEMPLATES)"
    )
    parser.add_argument("--survey", choices=SURVEYS, default="mixed")
    parser.add_argument(
        "--classes",
        nargs="*",
        help="kinds (O B A F G K M Carbon WD GALAXY QSO) or groups (stellar8, stars, all)",
    )
    parser.add_argument("--mix", choices=MIXES, default="survey")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true", help="write .fits.gz files")
    parser.add_argument("--lamost-layout", choices=LAMOST_LAYOUT_CHOICES, default="mixed")
    parser.add_argument("--sdss-hdu", choices=SDSS_HDU_CHOICES, default="mixed")
    parser.add_argument("--label-noise", type=float, default=0.02, help="wrong pipeline labels")
    parser.add_argument("--snr-median", type=float, default=20.0, help="median S/N_r per pixel")
    parser.add_argument("--snr-sigma", type=float, default=0.8, help="log-normal width of S/N")
    parser.add_argument("--snr-min", type=float, default=2.0)
    parser.add_argument("--snr-max", type=float, default=300.0)
    parser.add_argument(
        "--realism",
        choices=("survey", "survey-full", "clean"),
        default="survey",
        help="survey: real populations, instrument effects and file variants (default); "
        "survey-full: also dust, LAMOST arm steps and lost regions, nearby galaxies; "
        "clean: the earlier, tidier model",
    )
    parser.add_argument(
        "--with-2d",
        action="store_true",
        help="also write blue/red 2D spectrum stripes per spectrum (OUT/stripes/...)",
    )
    parser.add_argument(
        "--with-photometry",
        action="store_true",
        help="also write g, r, i 64x64 cutouts per spectrum (OUT/cutouts/...)",
    )
    parser.add_argument(
        "--fibre-contamination",
        type=float,
        default=0.1,
        help="probability of a neighbouring fibre's light in a stripe's edge rows",
    )
    parser.add_argument("--chunk-size", type=int, default=500, help="spectra per manifest chunk")


def cmd_synth(args: argparse.Namespace) -> int:
    """Generate a synthetic release in the surveys' real file formats, plus its manifest."""
    from raysurvey.synth import write_release
    from raysurvey.synth.summary import release_summary

    config = synth_config(args)
    manifest = write_release(config, chunk_size=args.chunk_size)
    print(release_summary(manifest))
    return 0


def cmd_release_summary(args: argparse.Namespace) -> int:
    """Print counts and S/N quantiles of a release manifest."""
    from raysurvey.synth.summary import release_summary

    print(release_summary(args.manifest))
    return 0


def cmd_plot_spectra(args: argparse.Namespace) -> int:
    """Plot one spectrum per class of a release (or beside real ones: --compare) to a PNG."""
    from raysurvey.synth.plot import plot_compare, plot_release

    if args.compare:
        path = plot_compare(args.manifest, args.compare, args.out)
    else:
        path = plot_release(args.manifest, args.out, min_snr=args.min_snr)
    print(f"wrote {path}")
    return 0


def cmd_plot_modalities(args: argparse.Namespace) -> int:
    """Draw every modality of a few spectra of a release to a PNG sheet (to look at them)."""
    from raysurvey.data.features import parse_options
    from raysurvey.modalities.sheet import SHEET_MODALITIES, plot_modalities

    names = args.modalities.split(",") if args.modalities else list(SHEET_MODALITIES)
    path = plot_modalities(
        args.manifest, args.out, n=args.n, modalities=names, options=parse_options(args.option)
    )
    print(f"wrote {path}")
    return 0


def _plot_modalities_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.parquet of a release")
    parser.add_argument("--out", default="modalities.png", help="PNG path")
    parser.add_argument("--n", type=int, default=6, help="spectra (one per class first)")
    parser.add_argument("--modalities", help="comma-separated (default: all single modalities)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME.OPTION=VALUE",
        help="modality option, e.g. map2d.variant=spectromer (repeatable)",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a release, train a small model (or reuse it), classify, query the catalog."""
    from raysurvey.demo import run_demo
    from raysurvey.synth import resolve_templates

    return run_demo(args.workdir, resolve_templates(args.templates), n=args.n, seed=args.seed)


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered models: parameters (default config) and the modalities read."""
    import torch

    from raysurvey.models import create_model, list_models

    print(f"{'model':<14} {'parameters':>12}  reads")
    for name in list_models():
        with torch.device("meta"):  # no memory, no init: counts only
            model = create_model(name)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<14} {n:>12,}  {', '.join(model.modalities)}")
    return 0


def cmd_bundle_info(args: argparse.Namespace) -> int:
    """Describe a model bundle (local path or URI) without loading its weights."""
    from raysurvey.models.bundle import read_manifest

    m = read_manifest(args.uri)
    print(f"bundle   {args.uri}")
    print(f"model    {m['model_name']} ({m['parameters']:,} parameters), version {m['version']}")
    print(f"task     {m['task']}; labels: {', '.join(m['labels'])}")
    for name, options in m["modalities"].items():
        text = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        print(f"reads    {name} ({text})")
    print(f"created  {m['created_at']} by raysurvey {m['raysurvey_version']}")
    for key, value in m.get("metadata", {}).items():
        print(f"meta     {key}: {value}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run SQL over a catalog (local or s3://) with DuckDB; the table is ``catalog``."""
    from raysurvey.infer.query import format_rows, query

    names, rows = query(args.catalog, args.sql)
    print(format_rows(names, rows, limit=args.limit))
    return 0


def _query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "catalog", help="catalog directory written by classify_release, or a HATS directory"
    )
    parser.add_argument("sql", help='e.g. "SELECT pred_class, count(*) FROM catalog GROUP BY 1"')
    parser.add_argument("--limit", type=int, default=200, help="rows to print at most")


def cmd_manifest(args: argparse.Namespace) -> int:
    """Write a manifest of real FITS files, labels from their headers (Ray for many)."""
    from raysurvey.ingest import build_manifest, format_counts, main_progress

    use_ray = True if args.ray else None
    counts = build_manifest(args.sources, args.out, use_ray=use_ray, progress=main_progress)
    print(
        f"manifest: {sum(n for (s, _), n in counts.items() if s != 'reason'):,} files -> {args.out}"
    )
    print(format_counts(counts))
    return 0


def _manifest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", help="directories, s3:// prefixes or FITS files")
    parser.add_argument("--out", required=True, help="manifest Parquet path or URI")
    parser.add_argument("--ray", action="store_true", help="read with Ray tasks (default: >20k)")


def cmd_realcheck(args: argparse.Namespace) -> int:
    """Classify a labelled real set with bundles; print agreement with the pipelines."""
    from raysurvey.realcheck import run_realcheck
    from raysurvey.realdata import find_realdata

    data = None if args.manifest else find_realdata(args.data)
    if data is None and not args.manifest:
        print("realcheck: no real set (--data DIR, $RAYSURVEY_REALDATA or ../shared/realdata)")
        return 2
    out = args.out or tempfile.mkdtemp(prefix="realcheck-")
    report = run_realcheck(
        args.bundles, str(data) if data else None, out, manifest_uri=args.manifest
    )
    return 0 if report.overall[1] or report.stellar_first_letter else 1


def _realcheck_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundles", nargs="+", help="bundle dirs/URIs (class3, then stellar8)")
    parser.add_argument("--data", help="labelled real set (folder with MANIFEST.csv or FITS)")
    parser.add_argument("--manifest", help="or a manifest of real files (`raysurvey manifest`)")
    parser.add_argument("--out", help="folder for the catalog and the report (default: a temp dir)")


def cmd_calibrate_bundle(args: argparse.Namespace) -> int:
    """Fit a classifier bundle's calibration, OOD score and warning thresholds (val split)."""
    import ray

    from raysurvey.calibration import calibrate_bundle
    from raysurvey.models.bundle import BundleError

    if not ray.is_initialized():
        ray.init(address=args.address)
    try:
        calibrate_bundle(
            args.bundle,
            args.manifest[0] if len(args.manifest) == 1 else tuple(args.manifest),
            out=args.out,
            ood_method=args.ood_method,
            low_confidence_rate=args.low_confidence_rate,
            ood_rate=args.ood_rate,
            mahalanobis_rate=args.mahalanobis_rate,
            flag_rate=args.flag_rate if args.flag_rate > 0 else None,
        )
    except FileNotFoundError as exc:
        print(f"calibrate-bundle: not found: {exc}", file=sys.stderr)
        return 2
    except (BundleError, ValueError) as exc:
        print(f"calibrate-bundle: {exc}", file=sys.stderr)
        return 2
    return 0


def _calibrate_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    from raysurvey.calibration import (
        FLAG_RATE,
        LOW_CONFIDENCE_RATE,
        MAHALANOBIS_RATE,
        OOD_METHODS,
        OOD_RATE,
    )

    parser.add_argument("bundle", help="classification bundle dir or URI")
    parser.add_argument(
        "--manifest",
        action="append",
        required=True,
        help="release manifest (its val split is used); repeat for a bundle trained on "
        "several, in the same order",
    )
    parser.add_argument("--out", help="write the calibrated bundle here (default: in place)")
    parser.add_argument("--ood-method", default="combined", choices=OOD_METHODS)
    parser.add_argument(
        "--low-confidence-rate",
        type=float,
        default=LOW_CONFIDENCE_RATE,
        help="share of correct validation rows LOW_CONFIDENCE may flag",
    )
    parser.add_argument(
        "--ood-rate",
        type=float,
        default=OOD_RATE,
        help="share of validation rows OUT_OF_DISTRIBUTION may flag (combined: energy part)",
    )
    parser.add_argument(
        "--mahalanobis-rate",
        type=float,
        default=MAHALANOBIS_RATE,
        help="combined: share of validation rows the feature-distance part may flag",
    )
    parser.add_argument(
        "--flag-rate",
        type=float,
        default=FLAG_RATE,
        help="most correct validation rows LOW_CONFIDENCE and OUT_OF_DISTRIBUTION may flag "
        "together (their rates scaled down to fit; 0: no joint budget)",
    )
    parser.add_argument("--address", help="Ray address (default: auto / a local Ray)")


def cmd_warning_report(args: argparse.Namespace) -> int:
    """Errors caught / correct rows flagged per warning bit vs confidence cuts."""
    from raysurvey.warning_report import labels_table, read_catalog_rows, warning_report

    report = warning_report(read_catalog_rows(args.catalog), labels_table(args.labels))
    print(report.markdown())
    return 0


def _warning_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("catalog", help="catalog directory written by classify_release")
    parser.add_argument(
        "--labels",
        required=True,
        help="manifest Parquet with uri and class, or a labelled real set folder (MANIFEST.csv)",
    )


def cmd_publish_hats(args: argparse.Namespace) -> int:
    """Publish a catalog's committed chunks as HATS (with a margin cache) for LSDB."""
    from raysurvey.hats_publish import run_from_args

    return run_from_args(args)


def _publish_hats_arguments(parser: argparse.ArgumentParser) -> None:
    from raysurvey.hats_publish import add_arguments

    add_arguments(parser)


def cmd_catalog_summary(args: argparse.Namespace) -> int:
    """Print a catalog's counts by status, survey and class, and write its sky map."""
    from raysurvey.infer.query import catalog_summary

    print(catalog_summary(args.catalog, skymap=args.skymap or None))
    return 0


def _catalog_summary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("catalog", help="catalog directory written by classify_release")
    parser.add_argument("--skymap", default="skymap.png", help="PNG path ('' for none)")


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.parquet of a release")
    parser.add_argument("--out", default="spectra.png", help="PNG path")
    parser.add_argument("--min-snr", type=float, default=15.0, help="prefer spectra above this")
    parser.add_argument(
        "--compare",
        metavar="REAL_MANIFEST",
        help="a manifest of real files (`raysurvey manifest`): plot synthetic and real "
        "spectra side by side per class and survey",
    )


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default=".cache/demo", help="release, bundle and catalog")
    parser.add_argument("--templates", help="Redrock templates (default: $RAYSURVEY_TEMPLATES)")
    parser.add_argument("--n", type=int, default=1200, help="number of spectra")
    parser.add_argument("--seed", type=int, default=0)


def cmd_compare_snr(args: argparse.Namespace) -> int:
    """Accuracy per S/N bin of evaluated models side by side (DRC-Net's Figure 7)."""
    from raysurvey.train.snr_compare import CompareError, compare_snr

    reports = {}
    for item in args.reports:
        name, sep, uri = item.partition("=")
        if not sep:
            name, uri = os.path.basename(item.rstrip("/")), item
        reports[name] = uri
    try:
        compare_snr(reports, args.out)
    except CompareError as exc:
        print(f"compare-snr: {exc}", file=sys.stderr)
        return 2
    with open_text(f"{args.out.rstrip('/')}/snr_comparison.md") as f:
        print(f.read(), end="")
    print(f"\ncompare-snr: table and chart in {args.out}", file=sys.stderr)
    return 0


def open_text(uri: str):
    import fsspec

    return fsspec.open(uri, "r")


def _compare_snr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reports", nargs="+", help="NAME=EVAL_DIR (or EVAL_DIR) written by jobs/evaluate.py"
    )
    parser.add_argument("--out", required=True, help="directory for snr_comparison.md/.csv/.png")


COMMANDS: dict[
    str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]
] = {
    "read": (
        cmd_read,
        lambda p: p.add_argument("sources", nargs="+", help="paths or URIs (s3://...)"),
    ),
    "readers": (cmd_readers, lambda p: None),
    "examples": (cmd_examples, lambda p: p.add_argument("--out", help="directory for the files")),
    "synth": (cmd_synth, add_synth_arguments),
    "release-summary": (cmd_release_summary, lambda p: p.add_argument("manifest")),
    "plot-spectra": (cmd_plot_spectra, _plot_arguments),
    "plot-modalities": (cmd_plot_modalities, _plot_modalities_arguments),
    "demo": (cmd_demo, _demo_arguments),
    "models": (cmd_models, lambda p: None),
    "bundle-info": (cmd_bundle_info, lambda p: p.add_argument("uri", help="bundle dir or URI")),
    "query": (cmd_query, _query_arguments),
    "catalog-summary": (cmd_catalog_summary, _catalog_summary_arguments),
    "publish-hats": (cmd_publish_hats, _publish_hats_arguments),
    "manifest": (cmd_manifest, _manifest_arguments),
    "realcheck": (cmd_realcheck, _realcheck_arguments),
    "compare-snr": (cmd_compare_snr, _compare_snr_arguments),
    "calibrate-bundle": (cmd_calibrate_bundle, _calibrate_bundle_arguments),
    "warning-report": (cmd_warning_report, _warning_report_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raysurvey", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"raysurvey {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, configure) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0])
        configure(sub_parser)
        sub_parser.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
