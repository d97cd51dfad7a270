"""classify_release against a single-threaded loop, and its wall time and memory at scale.

    python benchmarks/bench_classify.py                       # stages, throughput, scale
    python benchmarks/bench_classify.py --skip-scale --bundle BUNDLE --stage-manifest M
    python benchmarks/bench_classify.py --only-scale --scale-sizes 10000,50000,100000

Stages: one process, one thread, the catalog's own code (``read_spectrum``, ``to_grid``,
``ModalityStage``, ``Predictor``, the chunk writer's Parquet settings), ms a spectrum
per stage and in total, as a ratio to Redrock's 1.10 CPU-s a spectrum; with templates,
the redshift fit (every class, the template check) is timed too.

Throughput: (a) one process, one thread: decode, grid, modalities, forward pass,
softmax, in batches, on ``--loop-n`` files; (b) ``classify_release`` with Ray on every
CPU, fused and split pipelines, over ``--rows`` rows (the release's files repeated
under distinct ids). Printed: both rates and the ratio to N single-threaded loops, end
to end (Ray start-up included) and steady (the rows after the first 20 % over the time
they took, from progress reports every 0.5 s; a million-row release runs at the
steady rate). ``--bundles`` have random weights (speed does not depend on them);
``--bundle`` uses a real one (a calibrated bundle also pays its OOD score).

Scale: manifests of N rows over an existing release (rows repeat its files under
distinct ids when N is larger than it, which spares the disk), classified with a
spec_cnn bundle; wall time and the peak of the summed PSS of every Ray process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the baseline is one thread
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from common import PeakMemory, ensure_release, start_ray  # noqa: E402

from raysurvey.data import ComputeModalities, decode_uris  # noqa: E402
from raysurvey.data.decode import DecodeOptions  # noqa: E402
from raysurvey.data.pipeline import (  # noqa: E402
    ModalityStage,
    column_numpy,  # noqa: E402
    decode_table,
)
from raysurvey.infer import ClassifyConfig, classify_release  # noqa: E402
from raysurvey.infer.catalog import modalities_of, plan_bundles  # noqa: E402
from raysurvey.infer.predict import ROW, Predictor  # noqa: E402
from raysurvey.infer.redshift_stage import plan_redshift  # noqa: E402
from raysurvey.io import SpectrumReadError, read_spectrum  # noqa: E402
from raysurvey.labels import CLASS3  # noqa: E402
from raysurvey.models import create_model, prepare_inputs, run_model  # noqa: E402
from raysurvey.models.bundle import load_bundle, read_manifest, save_bundle  # noqa: E402
from raysurvey.spectra import to_grid  # noqa: E402
from raysurvey.synth import resolve_templates  # noqa: E402

#: Redrock on one core, median CPU-seconds a spectrum on 566 real LAMOST/SDSS files.
REDROCK_S = 1.10
#: The goals of docs/benchmarks.md: ms a spectrum on one core.
GOAL_TOTAL_MS, GOAL_CPU_STAGES_MS = 3.7, 1.0

BUNDLES = {
    "spec_cnn": {},
    "fusion_cpu": {},
}


def make_bundle(work: Path, name: str) -> str:
    path = work / "bundles" / name
    if not (path / "bundle.json").exists():
        torch.manual_seed(0)
        model = create_model(name, num_classes=3, **BUNDLES.get(name, {}))
        save_bundle(model, str(path), labels=list(CLASS3), overwrite=True)
    return str(path)


def _read_or_none(uri: str):
    try:
        return read_spectrum(uri)
    except SpectrumReadError:  # an unreadable file costs its read, as in the catalog
        return None


def stage_times(
    manifest: str, n: int, bundle_uri: str, templates: str | None, batch_size: int = 64
) -> dict[str, float]:
    """Milliseconds a spectrum of each stage of the catalog path, one thread."""
    import io

    torch.set_num_threads(1)
    rows = pq.read_table(manifest).slice(0, n)
    rows = rows.append_column(ROW, pa.array(np.arange(rows.num_rows)))
    roles = plan_bundles([(bundle_uri, read_manifest(bundle_uri))])
    names = modalities_of(roles)
    redshift = plan_redshift(templates, roles, True) if templates else None
    modality = ModalityStage(list(names), names, keep_flux=True)
    predictor = Predictor(roles, use_gpu=False, threads=1)  # fast CPU path, no redshift
    model = predictor.bundles[0].model
    plain = load_bundle(bundle_uri).model  # the same weights without the fast path
    fill = Predictor(roles, use_gpu=False, threads=1, redshift=redshift).redshift
    seconds: dict[str, float] = dict.fromkeys(
        ("read", "grid", "modalities", "model", "model_plain", "predict", "parquet", "redshift"),
        0.0,
    )

    def timed(key, fn, *args, **kwargs):
        start = time.process_time()
        out = fn(*args, **kwargs)
        seconds[key] += time.process_time() - start
        return out

    for i in range(0, rows.num_rows, batch_size):
        block = rows.slice(i, batch_size)
        uris = block.column("uri").to_pylist()
        spectra = timed("read", lambda us: [_read_or_none(u) for u in us], uris)
        timed("grid", lambda ss: [to_grid(s) for s in ss if s is not None], spectra)
        decoded = decode_table(block, DecodeOptions(keep_ivar=True))  # untimed: read + grid
        table = timed("modalities", modality, decoded)
        wanted = tuple(model.modalities)
        x = prepare_inputs({m: column_numpy(table, m) for m in wanted}, wanted)
        with torch.inference_mode():
            timed("model", run_model, model, x)
            timed("model_plain", run_model, plain, x)
        catalog = timed("predict", predictor, table)
        timed("parquet", pq.write_table, catalog, io.BytesIO(), compression="zstd")
        if fill is not None:
            ok = np.asarray(table.column("status").to_pylist()) == "ok"
            flux = column_numpy(table, "flux")[ok]
            ivar = column_numpy(table, "ivar")[ok]
            classes = np.asarray(catalog.column("pred_class").to_pylist(), dtype=object)[ok]
            timed("redshift", fill, flux, ivar, list(classes))
    ms = {k: v / rows.num_rows * 1e3 for k, v in seconds.items()}
    ms["predict"] -= ms["model"]  # the rest of the predictor: softmax, calibration, OOD, Arrow
    return ms


def print_stages(ms: dict[str, float], n: int, where: str, with_redshift: bool) -> None:
    cpu = ms["read"] + ms["grid"] + ms["modalities"]
    total = cpu + ms["model"] + ms["predict"] + ms["parquet"]
    redrock = REDROCK_S * 1e3
    print(f"stages: {n} spectra of {where}, one thread, CPU ms a spectrum")
    rows = [
        ("read (FITS)", ms["read"]),
        ("grid", ms["grid"]),
        ("modalities", ms["modalities"]),
        ("model forward", ms["model"]),
        ("  (plain model)", ms["model_plain"]),
        ("predictor rest", ms["predict"]),
        ("parquet write", ms["parquet"]),
    ]
    for name, value in rows:
        print(f"  {name:18s} {value:7.3f}")
    print(
        f"  {'CPU stages':18s} {cpu:7.3f}   (read + grid + modalities; goal <= "
        f"{GOAL_CPU_STAGES_MS:g} ms: {'met' if cpu <= GOAL_CPU_STAGES_MS else 'missed'})"
    )
    print(
        f"  {'total':18s} {total:7.3f}   = {redrock / total:.0f}x Redrock's {REDROCK_S:.2f} s "
        f"(goal <= {GOAL_TOTAL_MS:g} ms, 300x: "
        f"{'met' if total <= GOAL_TOTAL_MS else 'missed'})"
    )
    if with_redshift:
        z = ms["redshift"]
        print(
            f"  {'redshift (all cls)':18s} {z:7.3f}   total with it {total + z:.3f} ms "
            f"= {redrock / (total + z):.0f}x Redrock"
        )


def plain_loop(uris: list[str], bundle_uri: str, batch_size: int = 64) -> float:
    """Spectra/s of decode + modalities + forward in this process, one thread."""
    torch.set_num_threads(1)
    bundle = load_bundle(bundle_uri, prepare_inference=True)
    names = list(bundle.modalities)
    stage = ComputeModalities(names, bundle.modalities)
    start = time.perf_counter()
    for i in range(0, len(uris), batch_size):
        chunk = uris[i : i + batch_size]
        decoded = decode_uris(chunk)
        decoded["survey"] = np.array(["lamost" if "/lamost/" in u else "sdss" for u in chunk])
        batch = stage(decoded)
        ok = batch["status"] == "ok"
        x = prepare_inputs({k: v[ok] for k, v in batch.items() if k in names}, tuple(names))
        with torch.inference_mode():
            torch.softmax(run_model(bundle.model, x), dim=1).numpy()
    return len(uris) / (time.perf_counter() - start)


class Arrivals:
    """Records (rows done, time) from classify's progress lines for a steady rate."""

    def __init__(self):
        self.points: list[tuple[int, float]] = []

    def __call__(self, text: str) -> None:
        if text.startswith("classify: ") and " spectra (" in text:
            done = int(text.split()[1].split("/")[0].replace(",", ""))
            self.points.append((done, time.perf_counter()))

    def steady(self, total: int) -> float:
        after = [(n, t) for n, t in self.points if n >= 0.2 * total]
        if len(after) < 2 or after[-1][0] == after[0][0]:
            return float("nan")
        return (after[-1][0] - after[0][0]) / (after[-1][1] - after[0][1])


def run_classify(
    manifest: str, bundle: str, out: Path, chunk_size: int, fused: bool | None = None
) -> tuple:
    if out.exists():
        shutil.rmtree(out)
    arrivals = Arrivals()
    config = ClassifyConfig(chunk_size=chunk_size, progress_every_s=0.5, fused=fused)
    result = classify_release(manifest, [bundle], str(out), config, log=arrivals)
    return result, arrivals.steady(result.n_rows)


def scaled_manifest(source: str, n: int, out: Path) -> str:
    """``n`` rows over the files of ``source``, repeating them under distinct ids."""
    table = pq.read_table(source)
    copies = []
    for k in range(-(-n // table.num_rows)):
        copy = table
        if k:
            obsid = pc.add(table.column("obsid"), pa.scalar(k * 10**12, pa.int64()))
            specobjid = pc.binary_join_element_wise(table.column("specobjid"), f"-{k}", "")
            copy = copy.set_column(copy.schema.get_field_index("obsid"), "obsid", obsid)
            copy = copy.set_column(copy.schema.get_field_index("specobjid"), "specobjid", specobjid)
        copies.append(copy)
    path = out / f"manifest-{n}.parquet"
    pq.write_table(pa.concat_tables(copies).slice(0, n), path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default=None, help="Redrock templates (default: env)")
    parser.add_argument("--n", type=int, default=4000, help="files of the synthetic release")
    parser.add_argument(
        "--rows", type=int, default=30000, help="rows of the throughput runs (files repeat)"
    )
    parser.add_argument("--loop-n", type=int, default=500, help="spectra for the plain loop")
    parser.add_argument("--bundles", default="spec_cnn,fusion_cpu", help="random-weight models")
    parser.add_argument("--bundle", help="a real bundle instead of --bundles (e.g. calibrated)")
    parser.add_argument("--stage-n", type=int, default=640, help="spectra for the stage times")
    parser.add_argument("--stage-manifest", help="manifest for the stage times (default: synth)")
    parser.add_argument("--no-redshift", action="store_true", help="skip the redshift stage")
    parser.add_argument(
        "--pipelines", default="fused,split", help="classify_release modes to compare"
    )
    parser.add_argument("--scale-sizes", default="10000,50000,100000")
    parser.add_argument("--scale-release", default=".cache/bench/release-4000")
    parser.add_argument("--only-scale", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--workdir", default=".cache/bench")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--object-store-gib", type=float, default=2.0)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    start_ray(args.num_cpus, args.object_store_gib)
    if not args.only_scale:
        templates = resolve_templates(args.templates)
        manifest = ensure_release(work / f"release-{args.n}", args.n, templates, 5)
        uris = pq.read_table(manifest, columns=["uri"]).column("uri").to_pylist()
        bundles = (
            {Path(args.bundle).name: args.bundle}
            if args.bundle
            else {name: make_bundle(work, name) for name in args.bundles.split(",")}
        )
        first = next(iter(bundles.values()))
        stage_manifest = args.stage_manifest or manifest
        stage_times(stage_manifest, 64, first, None)  # warm caches and lazy imports
        z_templates = None if args.no_redshift else templates
        ms = stage_times(stage_manifest, args.stage_n, first, z_templates)
        print_stages(ms, args.stage_n, stage_manifest, z_templates is not None)
        cpus = args.num_cpus
        print(
            f"\nthroughput: {args.rows} rows over {args.n} files, {cpus} CPUs, 20,000-row "
            f"chunks; loop on {args.loop_n}; ratio = "
            f"classify_release / ({cpus} x one single-threaded loop), goal >= 0.9"
        )
        head = ("bundle", "pipeline", "loop/s", "e2e/s", "ratio", "steady/s", "ratio")
        print("{:12s} {:8s} {:>8s} {:>8s} {:>6s} {:>9s} {:>6s}".format(*head))
        rows = scaled_manifest(manifest, args.rows, work)
        for name, bundle in bundles.items():
            plain_loop(uris[:64], bundle)  # warm caches and lazy imports
            loop = plain_loop(uris[: args.loop_n], bundle)
            for mode in args.pipelines.split(","):
                out = work / f"catalog-{name}-{mode}"
                result, steady = run_classify(rows, bundle, out, 20_000, fused=mode == "fused")
                e2e = result.rows_written / result.seconds
                print(
                    f"{name:12s} {mode:8s} {loop:8.1f} {e2e:8.1f} {e2e / loop / cpus:5.2f}x "
                    f"{steady:9.1f} {steady / loop / cpus:5.2f}x   ({result.rows_written} rows "
                    f"in {result.seconds:.1f} s)",
                    flush=True,
                )
    if args.skip_scale:
        return
    source = str(Path(args.scale_release) / "manifest.parquet")
    bundle = make_bundle(work, "spec_cnn")
    print(f"\nscale: spec_cnn over {source}, object store {args.object_store_gib:g} GiB")
    for n in [int(s) for s in args.scale_sizes.split(",")]:
        manifest = scaled_manifest(source, n, work)
        with PeakMemory() as memory:
            result, steady = run_classify(manifest, bundle, work / "catalog-scale", 20_000)
        assert result.check.rows == n
        print(
            f"  {n:>7,d} spectra: {result.seconds:7.0f} s ({result.seconds / n * 1e3:.2f} ms "
            f"a spectrum, steady {steady:.1f}/s), peak {memory.peak_kib / 2**20:.2f} GiB PSS "
            f"({memory.peak_private_kib / 2**20:.2f} GiB private)",
            flush=True,
        )


if __name__ == "__main__":
    main()
