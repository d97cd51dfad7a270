"""``make demo``: the whole story on one machine, from nothing to a queried catalog.

1. generate a small mixed release (LAMOST and SDSS files, stars, galaxies, QSOs);
2. train a spec_cnn class3 model briefly with Ray Train (two CPU workers), or reuse
   the bundle a previous demo trained with the same code (a hash of the package);
3. classify the release with ``classify_release`` into a Parquet catalog (with
   template-fit redshifts when the Redrock templates are there);
4. print the final check, the catalog summary (and a sky map), a query result and
   the z_pred-vs-z agreement (and its plot);
5. publish the catalog as HATS (``publish_hats``) and print an LSDB cone search;
6. classify the labelled real files of ``../shared/realdata`` (``$RAYSURVEY_REALDATA``)
   and print the model's agreement with the survey pipelines (``raysurvey realcheck``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import raysurvey


def code_version() -> str:
    """A hash of the package's source: a demo bundle is reused only by the same code."""
    digest = hashlib.sha256()
    root = Path(raysurvey.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


#: The demo release: B-M stars, galaxies and QSOs in equal numbers.
DEMO_CLASSES = ("B", "A", "F", "G", "K", "M", "GALAXY", "QSO")


def run_demo(workdir: str, templates: str | None, n: int = 1200, seed: int = 0) -> int:
    import lsdb
    import pyarrow.parquet as pq
    import ray

    from raysurvey.hats_publish import PublishConfig, publish_hats
    from raysurvey.infer import ClassifyConfig, classify_release
    from raysurvey.infer.query import catalog_summary, format_rows, query
    from raysurvey.models.bundle import BundleError, read_manifest
    from raysurvey.realcheck import run_realcheck
    from raysurvey.realdata import ENV_VAR as REALDATA_ENV
    from raysurvey.realdata import find_realdata
    from raysurvey.synth import SynthConfig, write_release
    from raysurvey.synth.summary import release_summary
    from raysurvey.train.run import RunSpec, absolute_uri, fit

    start = time.perf_counter()
    if not ray.is_initialized():  # workers' progress bars stay in their logs
        ray.init(log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    work = Path(workdir).resolve()
    release_dir = work / f"release-n{n}-s{seed}"
    manifest = release_dir / "manifest.parquet"
    source = f"Redrock templates in {templates}" if templates else "the built-in physical model"
    print(f"raysurvey {raysurvey.__version__} demo in {work}\n")
    if manifest.exists() and pq.read_metadata(manifest).num_rows == n:
        print(f"[1/6] release: reusing {release_dir}")
    else:
        print(f"[1/6] release: {n} spectra (stars, galaxies, QSOs; LAMOST and SDSS) from {source}")
        config = SynthConfig(
            n=n,
            out=str(release_dir),
            templates=templates,
            classes=DEMO_CLASSES,
            mix="balanced",
            seed=seed,
            # faint spectra and the real files' effects (docs/real-data.md), so that the
            # demo model is right on real spectra too, not only on its own release
            snr_median=10.0,
            snr_sigma=0.9,
            snr_min=1.0,
            realism="survey",
        )
        write_release(config, chunk_size=max(1, n // 4))
    print(release_summary(str(manifest)))

    bundle = work / "bundles" / f"spec_cnn-class3-{code_version()}"
    try:
        info = read_manifest(str(bundle))
        print(f"\n[2/6] model: reusing {bundle} (trained by this code before)")
    except BundleError:
        print("\n[2/6] model: training spec_cnn (class3) with Ray Train, 2 CPU workers")
        began = time.perf_counter()
        fit(
            RunSpec(
                manifest=str(manifest),
                model="spec_cnn",
                storage=absolute_uri(str(work / "runs")),
                name=bundle.name,
                labels="class3",
                epochs=10,
                batch_size=32,
                lr=5e-4,
                balance_to="largest",  # replicate galaxies and QSOs up to the stars
                num_workers=2,
                cache_features=True,
                modality_options={"flux1d": {"norm": "robust"}},
                recalibrate_bn=False,  # the recipe measured on real spectra (real-data.md)
                bundle_out=str(bundle),
            )
        )
        info = read_manifest(str(bundle))
        print(f"trained in {time.perf_counter() - began:.0f} s")
    score = info.get("metadata", {}).get("val_score") or 0.0
    print(f"bundle {info['model_name']} {info['version']}, validation accuracy {score:.3f}")

    catalog = work / "catalog"
    print(f"\n[3/6] classify_release -> {catalog}")
    result = classify_release(
        str(manifest),
        [str(bundle)],
        str(catalog),
        ClassifyConfig(chunk_size=200, overwrite=True),
        templates=templates,
    )
    print(
        f"{result.rows_written:,} spectra in {result.seconds:.1f} s "
        f"({result.rate:.1f} spectra/s, start-up included)"
    )
    print("\n".join(result.check.lines()))

    print("\n[4/6] the catalog")
    print(catalog_summary(str(catalog), skymap=str(work / "skymap.png")))
    sql = (
        "SELECT class AS survey_class, pred_class, count(*) AS n FROM catalog "
        "WHERE status = 'ok' GROUP BY 1, 2 ORDER BY 1, 3 DESC"
    )
    print(f'\n$ raysurvey query {catalog} "{sql}"')
    print(format_rows(*query(str(catalog), sql)))
    if templates:
        show_redshifts(str(catalog), str(work / "z_pred_vs_z.png"))

    hats_dir = work / "catalog_hats"
    print(f"\n[5/6] publish as HATS (HEALPix-partitioned, for LSDB) -> {hats_dir}")
    published = publish_hats(
        str(catalog), str(hats_dir), PublishConfig(overwrite=True), log=lambda _: None
    )
    print("\n".join(published.lines()))
    ra, dec = query(str(catalog), "SELECT ra, dec FROM catalog WHERE status = 'ok' LIMIT 1")[1][0]
    print(f'\n>>> lsdb.read_hats("{hats_dir}").cone_search({ra:.3f}, {dec:.3f}, 10 * 3600)')
    cone = lsdb.read_hats(str(hats_dir)).cone_search(ra=ra, dec=dec, radius_arcsec=10 * 3600)
    found = cone.compute(progress_bar=False)
    columns = ["survey", "ra", "dec", "class", "pred_class", "confidence"]
    print(found[columns].to_string(index=False) + f"\n{len(found)} rows within 10 deg")
    real = find_realdata()
    if real is None:
        print(f"\n[6/6] real spectra: none found (set {REALDATA_ENV} or ../shared/realdata)")
    else:
        print(f"\n[6/6] real spectra: the demo model on the labelled real files in {real}")
        run_realcheck([str(bundle)], str(real), str(work / "realcheck"), log=print)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    return 0


#: Per predicted class: how many redshifts agree with the release's z within 0.003 (1 + z).
Z_SQL = (
    "SELECT pred_class, count(*) AS n, "
    "round(avg(CASE WHEN abs(z_pred - z) / (1 + z) < 0.003 THEN 1 ELSE 0 END), 3) "
    "AS within_0_003, round(median(z_pred_err), 6) AS median_z_err, "
    "sum(CASE WHEN warning & 64 != 0 THEN 1 ELSE 0 END) AS z_unreliable "
    "FROM catalog WHERE status = 'ok' AND z_pred IS NOT NULL GROUP BY 1 ORDER BY 1"
)


def show_redshifts(catalog: str, png: str) -> None:
    """Print the z_pred agreement query and write the z_pred-vs-z plot."""
    import fsspec
    import numpy as np

    from raysurvey.infer.query import format_rows, query
    from raysurvey.redshift.evaluate import plot_z
    from raysurvey.warning_bits import Z_UNRELIABLE

    print(f'\n$ raysurvey query {catalog} "{Z_SQL}"')
    print(format_rows(*query(catalog, Z_SQL)))
    _, rows = query(
        catalog,
        "SELECT class, z, z_pred, warning FROM catalog "
        "WHERE status = 'ok' AND z_pred IS NOT NULL AND z IS NOT NULL",
    )
    if rows:
        fit = {
            "z": np.array([r[2] for r in rows], dtype=float),
            "unreliable": np.array([(r[3] & Z_UNRELIABLE) != 0 for r in rows]),
        }
        truth = [{"class": r[0], "z": r[1]} for r in rows]
        fs, path = fsspec.core.url_to_fs(png)
        plot_z(truth, fit, fs, path)
        print(f"z_pred against the release's z: {png}")
