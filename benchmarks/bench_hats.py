"""Publishing a catalog as HATS: wall time and peak memory at 100k rows.

Builds (once, reused) a catalog-shaped raysurvey catalog of ``--n`` rows with random
sky positions (``write_example_catalog``: the real layout, schema and metadata, 20k-row
chunks), publishes it with ``publish_hats`` (hats-import on a local Dask cluster, with
a margin cache) and prints the wall time per stage and the peak memory: the summed RSS
of this process and every process it started (Dask workers), sampled every 0.1 s.
Then times one LSDB cone search, and with ``--ray`` the same cone search computed on
Ray (``ray.util.dask.ray_dask_get``) instead of Dask's threads.

    .venv/bin/python benchmarks/bench_hats.py [--n 100000] [--workers 1] [--repeat 2] [--ray]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def tree_rss_kib(root: int) -> int:
    """Summed VmRSS of ``root`` and all its descendants (KiB)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo.extend(_children(pid))
    return total


class PeakTreeRSS:
    def __init__(self, interval: float = 0.1):
        self.interval, self.peak_kib = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_rss_kib(os.getpid()))
            time.sleep(self.interval)

    def __enter__(self):
        self.before_kib = tree_rss_kib(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workdir", default=".cache/bench_hats")
    parser.add_argument("--workers", type=int, default=1, help="Dask workers (1: in-process)")
    parser.add_argument("--margin-arcsec", type=float, default=10.0)
    parser.add_argument("--pixel-threshold", type=int, default=10_000)
    parser.add_argument("--ray", action="store_true", help="also run the cone search on Ray")
    parser.add_argument("--repeat", type=int, default=1, help="publish this many times")
    args = parser.parse_args()

    from raysurvey.hats_publish import PublishConfig, publish_hats, write_example_catalog

    work = Path(args.workdir).resolve()
    catalog = work / f"catalog-n{args.n}"
    if not (catalog / "_catalog.json").exists():
        began = time.perf_counter()
        write_example_catalog(str(catalog), args.n, chunk_size=20_000, seed=1, no_coordinates=10)
        print(f"catalog: {args.n:,} rows written in {time.perf_counter() - began:.1f} s")
    size = sum(p.stat().st_size for p in catalog.glob("part-*.parquet"))
    print(f"catalog: {catalog} ({size / 2**20:.1f} MiB of Parquet)")
    out = work / f"hats-n{args.n}-w{args.workers}"
    config = PublishConfig(
        margin_arcsec=args.margin_arcsec,
        pixel_threshold=args.pixel_threshold,
        workers=args.workers,
    )
    for attempt in range(args.repeat):  # the first pays imports and numba compilation
        shutil.rmtree(out, ignore_errors=True)
        with PeakTreeRSS() as memory:
            result = publish_hats(str(catalog), str(out), config)
        print("\n".join(result.lines()))
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            f"peak RSS of the process tree: {memory.peak_kib / 2**20:.2f} GiB "
            f"(before: {memory.before_kib / 2**20:.2f} GiB; this process's own peak: "
            f"{peak_self / 2**20:.2f} GiB)"
        )
        rate = result.rows_published / result.seconds
        label = "first run in this process" if attempt == 0 else "again, same process"
        print(f"HATS publish ({label}): {result.seconds:.1f} s wall, {rate:,.0f} rows/s")

    import lsdb

    from raysurvey.hats_publish import hats_path

    opened = lsdb.read_hats(hats_path(str(out)))
    began = time.perf_counter()
    cone = opened.cone_search(ra=180.0, dec=30.0, radius_arcsec=5 * 3600).compute()
    print(f"cone search (5 deg): {len(cone):,} rows in {time.perf_counter() - began:.2f} s")
    if args.ray:
        import dask
        import ray
        from ray.util.dask import ray_dask_get

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            began = time.perf_counter()
            search = opened.cone_search(ra=180.0, dec=30.0, radius_arcsec=5 * 3600)
            with dask.config.set(scheduler=ray_dask_get):
                on_ray = search.compute()
            print(
                f"cone search on Ray (ray_dask_get): {len(on_ray):,} rows in "
                f"{time.perf_counter() - began:.2f} s (Ray start-up excluded)"
            )
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
