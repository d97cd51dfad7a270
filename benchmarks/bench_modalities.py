"""Modalities and the Ray Data pipeline against their baselines, measured in one run.

1. images: each image modality (batched numpy rasteriser / lookup table) against
   the matplotlib reference Spectromer uses: a figure per spectrum, savefig PNG,
   decoded back (targets: map2d >= 50x, simple and overlap >= 20x);
2. audio: mel + mfcc + lfcc for a batch at once against one torchaudio call per
   spectrum, transforms built once in both (target >= 5x);
3. pipeline: decode + grid + flux1d + map2d + mel on a local Ray cluster using both
   cores against the same functions in one single-threaded loop over the same files
   (target >= 1.6x, i.e. 0.8 per core);
4. memory: releases of 10k and 50k spectra streamed through the pipeline; peak
   summed PSS (proportional set size, so the shared object store is not counted
   twice) of every Ray process plus the driver, sampled every 0.25 s. It must be
   flat in release size and under 6 GiB.

Baselines are single-threaded (OMP/MKL/torch threads 1), so ratios are per core.

    .venv/bin/python benchmarks/bench_modalities.py [--templates DIR] [--pipeline-n 1500]
        [--memory-sizes 10000,50000] [--skip-memory] [--workdir .cache/bench]
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import PeakMemory, ensure_release, start_ray  # noqa: E402
from PIL import Image  # noqa: E402

from raysurvey.data import ComputeModalities, build_dataset, decode_uris  # noqa: E402
from raysurvey.modalities import compute  # noqa: E402
from raysurvey.modalities.audio import build_transform, minmax_normalise  # noqa: E402
from raysurvey.modalities.map2d import SPECTROMER_RANGE  # noqa: E402
from raysurvey.spectra import grid_wavelength  # noqa: E402
from raysurvey.synth import resolve_templates  # noqa: E402

torch.set_num_threads(1)
PIPELINE_MODALITIES = ["flux1d", "map2d", "mel"]


# --- matplotlib references (as the Spectromer code draws them) -------------------------


def _png(fig, **kwargs) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, **kwargs)
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf)
    image.load()
    return image


def mpl_simple(wave: np.ndarray, flux: np.ndarray) -> Image.Image:
    fig = plt.figure(figsize=(2.24, 2.24))
    plt.plot(wave, flux, linewidth=0.5)
    plt.axis("off")
    plt.tight_layout(pad=0)
    return _png(fig, bbox_inches="tight", pad_inches=0)


def mpl_overlap(wave: np.ndarray, flux: np.ndarray) -> Image.Image:
    fig = plt.figure(figsize=(2.24, 2.24))
    for part, w, colour in zip(
        np.array_split(flux, 3), np.array_split(wave, 3), ("red", "green", "blue"), strict=True
    ):
        plt.plot((w - w.min()) / (w.max() - w.min()), part, color=colour, lw=0.5, alpha=0.5)
    plt.axis("off")
    plt.tight_layout(pad=0)
    return _png(fig, bbox_inches="tight", pad_inches=0)


def mpl_map2d(wave: np.ndarray, flux: np.ndarray) -> Image.Image:
    image = np.zeros((224, 224))
    for index, value in enumerate(flux[: 74 * 74]):
        row, col = (index // 74) * 3, (index % 74) * 3
        image[row : row + 3, col : col + 3] = value
    fig = plt.figure(figsize=(2.24, 2.24))
    plt.imshow(image, cmap="viridis", vmin=SPECTROMER_RANGE[0], vmax=SPECTROMER_RANGE[1])
    plt.axis("off")
    plt.gca().set_position([0, 0, 1, 1])
    return _png(fig, bbox_inches="tight", pad_inches=0)


def _rate(fn, count: int, rounds: int = 3) -> float:
    """Best-of-rounds items per second (best: least disturbed by other processes)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return count / min(times)


def bench_images(flux: np.ndarray) -> list[tuple[str, float, float, float, float]]:
    wave = grid_wavelength(flux.shape[1])
    batch = {"flux": flux, "survey": np.array(["sdss"] * len(flux))}
    n_ref = min(24, len(flux))
    rows = []
    targets = {"map2d": 50.0, "simple": 20.0, "overlap": 20.0}
    refs = {"map2d": mpl_map2d, "simple": mpl_simple, "overlap": mpl_overlap}
    for name, ref in refs.items():
        options = {"variant": "spectromer"} if name == "map2d" else {}
        compute(name, batch, **options)  # warm caches
        ours = _rate(lambda n=name, o=options: compute(n, batch, **o), len(flux))
        base = _rate(lambda r=ref: [r(wave, f) for f in flux[:n_ref]], n_ref, rounds=2)
        rows.append((name, ours, base, ours / base, targets[name]))
    return rows


def bench_audio(flux: np.ndarray) -> tuple[float, float, float]:
    batch = {"flux": flux}
    compute("audio", batch)
    ours = _rate(lambda: compute("audio", batch), len(flux))
    signal = torch.from_numpy(minmax_normalise(flux[:, :3700]))
    from raysurvey.modalities.audio import median_filter

    transforms = [build_transform(name, "code") for name in ("mel", "mfcc", "lfcc")]

    def one_by_one():
        with torch.inference_mode():
            for row in range(signal.shape[0]):
                x = torch.from_numpy(median_filter(signal[row : row + 1].numpy(), 9))
                for transform in transforms:
                    transform(x)

    base = _rate(one_by_one, len(flux))
    return ours, base, ours / base


# --- pipeline -------------------------------------------------------------------------


def plain_loop(uris: list[str], batch_size: int = 32) -> float:
    """The same work in one process, one thread: decode a chunk, compute modalities."""
    stage = ComputeModalities(PIPELINE_MODALITIES)
    start = time.perf_counter()
    for i in range(0, len(uris), batch_size):
        chunk = uris[i : i + batch_size]
        decoded = decode_uris(chunk)
        decoded["survey"] = np.array(["lamost" if "/lamost/" in u else "sdss" for u in chunk])
        stage(decoded)
    return len(uris) / (time.perf_counter() - start)


def run_pipeline(manifest: str, limit: int | None = None) -> tuple[int, float, float]:
    """Rows, total seconds, and the steady rate over the second half of the rows.

    Planning, worker and actor start-up cost ~10 s on this machine whatever the
    release size; the steady rate is what a million-spectrum release sees.
    """
    start = time.perf_counter()
    arrivals = []
    ds = build_dataset(manifest, PIPELINE_MODALITIES, limit=limit)
    for batch in ds.iter_batches(batch_format="numpy", batch_size=64):
        arrivals.append((len(batch["uri"]), time.perf_counter()))
    end = time.perf_counter()
    counts = np.cumsum([n for n, _ in arrivals])
    rows = int(counts[-1])
    half = int(np.searchsorted(counts, rows // 2))
    steady = (rows - counts[half]) / (end - arrivals[half][1]) if half < len(arrivals) - 1 else 0
    return rows, end - start, float(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default=None, help="Redrock templates (default: env)")
    parser.add_argument("--batch", type=int, default=64, help="spectra per modality batch")
    parser.add_argument("--pipeline-n", type=int, default=1500)
    parser.add_argument("--memory-sizes", default="10000,50000")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-memory", action="store_true")
    parser.add_argument("--workdir", default=".cache/bench")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument(
        "--object-store-gib",
        type=float,
        default=2.0,
        help="Ray object store size; its pages, once touched, stay mapped, so the "
        "measured peak grows to it whatever the pipeline does",
    )
    args = parser.parse_args()
    templates = resolve_templates(args.templates)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    start_ray(args.num_cpus, args.object_store_gib)
    if args.only_memory:
        return bench_memory(args, templates, work)
    small = ensure_release(work / f"release-{args.pipeline_n}", args.pipeline_n, templates, 5)
    uris = pq.read_table(small, columns=["uri"]).column("uri").to_pylist()
    flux = decode_uris(uris[: args.batch])["flux"]

    print(f"images: batches of {args.batch}, matplotlib figure + savefig PNG per spectrum")
    print(f"{'modality':10s} {'ours/s':>9s} {'mpl/s':>8s} {'ratio':>7s} {'target':>7s}")
    for name, ours, base, ratio, target in bench_images(flux):
        print(f"{name:10s} {ours:9.0f} {base:8.1f} {ratio:6.1f}x {target:6.0f}x")

    ours, base, ratio = bench_audio(flux)
    print(f"\naudio (mel+mfcc+lfcc, code variant): batched {ours:.0f}/s, per spectrum ")
    print(f"  {base:.0f}/s: ratio {ratio:.1f}x (target 5x)")

    run_pipeline(small, limit=64)  # start workers and actors once
    loop_rate = plain_loop(uris)
    rows, seconds, steady = run_pipeline(small)
    assert rows == len(uris), (rows, len(uris))
    ray_rate = rows / seconds
    print(f"\npipeline ({', '.join(PIPELINE_MODALITIES)}), {rows} spectra, {args.num_cpus} CPUs:")
    print(f"  single-threaded loop      {loop_rate:6.1f}/s")
    print(f"  Ray Data, end to end      {ray_rate:6.1f}/s  ratio {ray_rate / loop_rate:.2f}x")
    print(f"  Ray Data, steady (2nd half) {steady:6.1f}/s  ratio {steady / loop_rate:.2f}x")
    print("  (target 1.6x = 0.8 per core)")

    if not args.skip_memory:
        bench_memory(args, templates, work)


def bench_memory(args, templates: str | None, work: Path) -> None:
    sizes = [int(s) for s in args.memory_sizes.split(",")]
    big = ensure_release(work / f"release-{max(sizes)}", max(sizes), templates, 6)
    print("\nmemory: peak summed PSS of all Ray processes + driver while streaming")
    for size in sizes:
        with PeakMemory() as memory:
            rows, seconds, steady = run_pipeline(big, limit=size if size < max(sizes) else None)
        print(
            f"  {size:>6d} spectra: {rows} rows in {seconds:.0f} s ({steady:.0f}/s steady), "
            f"peak {memory.peak_kib / 2**20:.2f} GiB PSS "
            f"({memory.peak_private_kib / 2**20:.2f} GiB private to processes)",
            flush=True,
        )


if __name__ == "__main__":
    main()
