"""Read time per file and layout: the fast path, the astropy path and bare fitsio.

For each layout, on the synthetic example files (``raysurvey.io.examples``, plain)
and on the real files of ../shared/realdata ($RAYSURVEY_REALDATA), the same file is
read by ``read_spectrum(engine="fast")`` (the default), ``read_spectrum(
engine="astropy")`` (the reference path) and a bare ``fitsio`` (cfitsio) read of the
same HDUs, columns and header that the record needs (public API, from the path;
fitsio reads gzip itself). Rounds alternate between the three; the median over
files of each file's best-of-``rounds`` time is printed. Real SDSS/BOSS files are
split into spec-lite (COADD, SPECOBJ|SPALL, SPZLINE: 4 HDUs) and full spec (per-
exposure HDUs too). Then ``decode_uris`` (read + common grid) per spectrum on the
real set, one file at a time, with each engine. One process, one thread.

    .venv/bin/python benchmarks/bench_io.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import fitsio  # noqa: E402

from raysurvey.data.decode import decode_uris  # noqa: E402
from raysurvey.io import SpectrumReadError, read_spectrum  # noqa: E402
from raysurvey.io.examples import write_examples  # noqa: E402
from raysurvey.io.reader import ENGINE_ENV, open_fits_file  # noqa: E402

SDSS_COADD = ["flux", "loglam", "ivar", "and_mask"]
SDSS_ROW = ["CLASS", "SUBCLASS", "Z", "Z_ERR", "ZWARNING", "SPECOBJID", "PLUG_RA", "PLUG_DEC"]


def bare_fitsio(path: str, layout: str) -> None:
    """The minimal fitsio read of what the record needs."""
    with fitsio.FITS(path) as f:
        if layout == "sdss_spec":
            coadd = f[1]
            names = {n.lower(): n for n in coadd.get_colnames()}
            coadd.read(columns=[names[c] for c in SDSS_COADD if c in names])
            meta = f[2]
            names = {n.upper(): n for n in meta.get_colnames()}
            meta.read(columns=[names[c] for c in SDSS_ROW if c in names], rows=[0])
            f[0].read_header()
        elif layout == "lamost_table":
            f[1].read(columns=["FLUX", "IVAR", "WAVELENGTH", "ANDMASK"])
            f[0].read_header()
        else:  # 2D image layouts: the image and the primary header
            f[0].read()
            f[0].read_header()


def best_ms(func, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def group_of(path: str, layout: str) -> str:
    if layout != "sdss_spec":
        return layout
    with open_fits_file(path) as f:
        return "sdss_spec full" if f.n_hdus > 4 else "sdss_spec lite"


def run(files: list[str], rounds: int, label: str) -> None:
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in files:
        try:
            layout = read_spectrum(path).meta["layout"]
        except SpectrumReadError:
            continue
        group = group_of(path, layout)
        runs = {
            "fast": lambda p=path: read_spectrum(p, engine="fast"),
            "astropy": lambda p=path: read_spectrum(p, engine="astropy"),
            "fitsio": lambda p=path, lay=layout: bare_fitsio(p, lay),
        }
        for name, func in runs.items():
            func()
            times[group][name].append(best_ms(func, rounds))
    print(f"\n{label}: median ms per file (best of {rounds} per file)")
    head = ("layout", "files", "fast", "astropy", "fitsio", "x astropy")
    print(f"{head[0]:18s} {head[1]:>5s} " + " ".join(f"{h:>8s}" for h in head[2:]))
    for group in sorted(times):
        med = {k: statistics.median(v) for k, v in times[group].items()}
        n = len(times[group]["fast"])
        print(
            f"{group:18s} {n:5d} {med['fast']:8.3f} {med['astropy']:8.3f} {med['fitsio']:8.3f} "
            f"{med['astropy'] / med['fast']:9.1f}"
        )


def decode_per_spectrum(files: list[str], engine: str, rounds: int) -> float:
    os.environ[ENGINE_ENV] = engine
    try:
        per_file = [best_ms(lambda p=p: decode_uris([p]), rounds) for p in files]
    finally:
        os.environ.pop(ENGINE_ENV, None)
    return statistics.median(per_file), statistics.mean(per_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(sorted(write_examples(tmp, gzipped=False)), args.rounds, "synthetic examples")
    root = None
    for candidate in (os.environ.get("RAYSURVEY_REALDATA"), "../shared/realdata"):
        if candidate and (Path(candidate) / "MANIFEST.csv").exists():
            root = Path(candidate)
            break
    if root is None:
        print("\nno real files: set RAYSURVEY_REALDATA")
        return
    with (root / "MANIFEST.csv").open(newline="") as handle:
        files = [str(root / row["path"]) for row in csv.DictReader(handle)]
    run(files, args.rounds, f"real files ({root})")
    print("\ndecode_uris (read + grid), one file a call, ms per spectrum: median / mean")
    for engine in ("fast", "astropy"):
        median, mean = decode_per_spectrum(files, engine, args.rounds)
        print(f"  {engine:8s} {median:7.3f} / {mean:7.3f}")


if __name__ == "__main__":
    main()
