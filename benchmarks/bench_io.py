"""Read throughput per layout, as a ratio to bare astropy on the same bytes.

For each layout (plain and gzip) the same in-memory file is read by
``raysurvey.io.read_spectrum`` (structure checks, layout identification,
validation, labels) and by a bare ``astropy.io.fits.open`` that touches the same
arrays; rounds alternate between the two so that machine noise hits both alike.
One process, one thread: spectra/s is per core. Target ratio >= 0.8.

    .venv/bin/python benchmarks/bench_io.py [--rounds 7] [--reads 100]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

from raysurvey.io import read_spectrum  # noqa: E402
from raysurvey.io.examples import EXAMPLE_BUILDERS  # noqa: E402


def bare_astropy(data: bytes, layout: str) -> float:
    """What a user script does: open, pull flux/ivar/wavelength arrays, a header value."""
    with fits.open(io.BytesIO(data), memmap=False) as hdul:
        if layout in ("lamost_image", "lamost_dr1", "sdss_spspec"):
            image = hdul[0].data
            flux, ivar = np.asarray(image[0], np.float32), np.asarray(image[1], np.float32)
            header = hdul[0].header
            if layout == "lamost_image":
                wave = np.asarray(image[2], np.float64)
            else:
                wave = 10.0 ** (header["COEFF0"] + header["COEFF1"] * np.arange(image.shape[1]))
        elif layout == "lamost_table":
            table = hdul[1].data
            flux, ivar = table["FLUX"][0], table["IVAR"][0]
            wave = np.asarray(table["WAVELENGTH"][0], np.float64)
            header = hdul[0].header
        else:
            table = hdul[1].data
            flux, ivar = table["flux"], table["ivar"]
            wave = 10.0 ** table["loglam"].astype(np.float64)
            header = hdul[2].data[0]
        _ = header["CLASS"] if layout != "sdss_spspec" else header["SPEC_CLN"]
        return float(flux[0] + ivar[0] + wave[0])


def time_reads(func, reads: int) -> float:
    start = time.perf_counter()
    for _ in range(reads):
        func()
    return reads / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--only", nargs="*", help="layout names to run (default: all)")
    args = parser.parse_args()

    print(f"{'layout':24s} {'raysurvey/s':>12s} {'astropy/s':>10s} {'ratio':>6s}")
    ratios = []
    for name, build in EXAMPLE_BUILDERS.items():
        if args.only and name not in args.only:
            continue
        for gz in (False, True):
            example = build(gzipped=gz)
            layout = example.layout
            if gz:  # the baseline must inflate too; astropy does so from a gzip stream
                import gzip

                def baseline(data=example.data, layout=layout):
                    return bare_astropy(gzip.decompress(data), layout)
            else:

                def baseline(data=example.data, layout=layout):
                    return bare_astropy(data, layout)

            def ours(data=example.data):
                return read_spectrum(data)

            ours(), baseline()  # warm caches and imports
            ours_rates, base_rates = [], []
            for _ in range(args.rounds):
                ours_rates.append(time_reads(ours, args.reads))
                base_rates.append(time_reads(baseline, args.reads))
            ours_rate, base_rate = statistics.median(ours_rates), statistics.median(base_rates)
            ratio = ours_rate / base_rate
            ratios.append(ratio)
            label = name + (".gz" if gz else "")
            print(f"{label:24s} {ours_rate:12.0f} {base_rate:10.0f} {ratio:6.2f}")
    print(
        f"\nminimum ratio {min(ratios):.2f}, geometric mean {statistics.geometric_mean(ratios):.2f}"
    )
    print("target: ratio >= 0.8 for every layout")


if __name__ == "__main__":
    main()
