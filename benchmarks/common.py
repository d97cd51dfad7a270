"""Helpers the benchmarks share: peak memory of all Ray processes, cached releases."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from raysurvey.synth import SynthConfig, write_release


def _memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, private) KiB of a process; private excludes shared pages (the object store)."""
    pss = private = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                private += int(line.split()[1])
    except OSError:
        pass
    return pss, private


def _ray_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"ray" in cmd and (b"ray::" in cmd or b"/ray/" in cmd or b"raylet" in cmd):
            pids.append(int(entry.name))
    return pids


class PeakMemory:
    """Samples the summed PSS of every Ray process and this driver in a thread."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_kib, self.peak_private_kib = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            pids = set(_ray_pids()) | {os.getpid()}
            usage = [_memory_kib(p) for p in pids]
            self.peak_kib = max(self.peak_kib, sum(u[0] for u in usage))
            self.peak_private_kib = max(self.peak_private_kib, sum(u[1] for u in usage))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def ensure_release(path: Path, n: int, templates: str | None, seed: int) -> str:
    manifest = path / "manifest.parquet"
    if manifest.exists() and pq.read_metadata(manifest).num_rows == n:
        return str(manifest)
    import ray

    from raysurvey.synth.release import generate_chunk  # noqa: F401  (Ray pickles it)

    config = SynthConfig(n=n, out=str(path), templates=templates, seed=seed, gzip=False)
    if n <= 2000:
        return write_release(config, progress=False)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs"))
    from make_release import ray_chunks

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return write_release(config, chunk_size=500, run_chunks=ray_chunks(config, 2 * cpus))


def start_ray(num_cpus: int, object_store_gib: float) -> None:
    """A local Ray of ``num_cpus`` with a capped object store (its touched pages count
    in the memory peaks), quiet workers, no dashboard."""
    import ray

    ray.init(
        num_cpus=num_cpus,
        object_store_memory=int(object_store_gib * 2**30),
        include_dashboard=False,
        log_to_driver=False,
    )
