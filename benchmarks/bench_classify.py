"""classify_release against a single-threaded loop, and its wall time and memory at scale.

    python benchmarks/bench_classify.py                       # throughput, both bundles
    python benchmarks/bench_classify.py --only-scale --scale-sizes 10000,50000,100000

Throughput: the same files go through (a) one process, one thread: decode, grid,
modalities, forward pass, softmax, in batches; (b) ``classify_release`` with Ray on
every CPU. Printed: both rates and their ratio, end to end (Ray start-up included)
and steady (the rows after the first 20 % over the time they took, from progress
reports every 0.5 s; a million-row release runs at the steady rate). Bundles have random
weights: speed does not depend on what the weights are.

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
from raysurvey.infer import ClassifyConfig, classify_release  # noqa: E402
from raysurvey.labels import CLASS3  # noqa: E402
from raysurvey.models import create_model, prepare_inputs, run_model  # noqa: E402
from raysurvey.models.bundle import load_bundle, save_bundle  # noqa: E402
from raysurvey.synth import resolve_templates  # noqa: E402

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


def plain_loop(uris: list[str], bundle_uri: str, batch_size: int = 64) -> float:
    """Spectra/s of decode + modalities + forward in this process, one thread."""
    torch.set_num_threads(1)
    bundle = load_bundle(bundle_uri)
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


def run_classify(manifest: str, bundle: str, out: Path, chunk_size: int) -> tuple:
    if out.exists():
        shutil.rmtree(out)
    arrivals = Arrivals()
    config = ClassifyConfig(chunk_size=chunk_size, progress_every_s=0.5)
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
    parser.add_argument("--n", type=int, default=4000, help="spectra for the throughput runs")
    parser.add_argument("--loop-n", type=int, default=500, help="spectra for the plain loop")
    parser.add_argument("--bundles", default="spec_cnn,fusion_cpu")
    parser.add_argument("--scale-sizes", default="10000,50000,100000")
    parser.add_argument("--scale-release", default=".cache/bench/release-50000")
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
        print(f"throughput: {args.n} spectra, {args.num_cpus} CPUs; loop on {args.loop_n}")
        head = ("bundle", "loop/s", "e2e/s", "ratio", "steady/s", "ratio")
        print("{:12s} {:>8s} {:>8s} {:>6s} {:>9s} {:>6s}".format(*head))
        for name in args.bundles.split(","):
            bundle = make_bundle(work, name)
            plain_loop(uris[:64], bundle)  # warm caches and lazy imports
            loop = plain_loop(uris[: args.loop_n], bundle)
            result, steady = run_classify(manifest, bundle, work / f"catalog-{name}", 500)
            e2e = result.rows_written / result.seconds
            print(
                f"{name:12s} {loop:8.1f} {e2e:8.1f} {e2e / loop:5.2f}x {steady:9.1f} "
                f"{steady / loop:5.2f}x   ({result.rows_written} rows in {result.seconds:.1f} s; "
                "target 1.6x)",
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
