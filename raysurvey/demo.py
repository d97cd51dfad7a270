"""``make demo``: the whole story on one machine, from nothing to a queried catalog.

1. generate a small mixed release (LAMOST and SDSS files, stars, galaxies, QSOs);
2. train a spec_cnn class3 model briefly with Ray Train (two CPU workers), or reuse
   the bundle a previous demo trained with the same code (a hash of the package);
3. classify the release with ``classify_release`` into a Parquet catalog;
4. print the final check, the catalog summary (and a sky map) and a query result.
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


def run_demo(workdir: str, templates: str | None, n: int = 600, seed: int = 0) -> int:
    import pyarrow.parquet as pq
    import ray

    from raysurvey.infer import ClassifyConfig, classify_release
    from raysurvey.infer.query import catalog_summary, format_rows, query
    from raysurvey.models.bundle import BundleError, read_manifest
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
        print(f"[1/4] release: reusing {release_dir}")
    else:
        print(f"[1/4] release: {n} spectra (stars, galaxies, QSOs; LAMOST and SDSS) from {source}")
        config = SynthConfig(
            n=n,
            out=str(release_dir),
            templates=templates,
            classes=("A", "F", "G", "K", "M", "GALAXY", "QSO"),
            mix="balanced",
            seed=seed,
            snr_median=25.0,
        )
        write_release(config, chunk_size=max(1, n // 4))
    print(release_summary(str(manifest)))

    bundle = work / "bundles" / f"spec_cnn-class3-{code_version()}"
    try:
        info = read_manifest(str(bundle))
        print(f"\n[2/4] model: reusing {bundle} (trained by this code before)")
    except BundleError:
        print("\n[2/4] model: training spec_cnn (class3) with Ray Train, 2 CPU workers")
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
                balance_to=n // 2,  # replicate galaxies and QSOs in training
                num_workers=2,
                cache_features=True,
                bundle_out=str(bundle),
            )
        )
        info = read_manifest(str(bundle))
        print(f"trained in {time.perf_counter() - began:.0f} s")
    score = info.get("metadata", {}).get("val_score") or 0.0
    print(f"bundle {info['model_name']} {info['version']}, validation accuracy {score:.3f}")

    catalog = work / "catalog"
    print(f"\n[3/4] classify_release -> {catalog}")
    result = classify_release(
        str(manifest), [str(bundle)], str(catalog), ClassifyConfig(chunk_size=200, overwrite=True)
    )
    print(
        f"{result.rows_written:,} spectra in {result.seconds:.1f} s "
        f"({result.rate:.1f} spectra/s, start-up included)"
    )
    print("\n".join(result.check.lines()))

    print("\n[4/4] the catalog")
    print(catalog_summary(str(catalog), skymap=str(work / "skymap.png")))
    sql = (
        "SELECT class AS survey_class, pred_class, count(*) AS n FROM catalog "
        "WHERE status = 'ok' GROUP BY 1, 2 ORDER BY 1, 3 DESC"
    )
    print(f'\n$ raysurvey query {catalog} "{sql}"')
    print(format_rows(*query(str(catalog), sql)))
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    return 0
