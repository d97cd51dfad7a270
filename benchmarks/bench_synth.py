"""Synthetic-release generation rate per core, and the writer against astropy's own.

For each output layout, N spectra are simulated (template draw, survey simulation,
labels) and written to bytes two ways in alternating rounds: raysurvey's writer
(astropy renders cards and table headers once per shape; ``synth/fitsbytes.py``) and
the baseline of building astropy HDU objects and calling ``HDUList.writeto`` per file.
Both files are read back by astropy to check they hold the same data. One process,
one thread: spectra/s is per core.

    .venv/bin/python benchmarks/bench_synth.py [--n 150] [--rounds 3] [--templates DIR]
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

from raysurvey.synth import SynthConfig, make_source, resolve_templates  # noqa: E402
from raysurvey.synth.release import simulate  # noqa: E402
from raysurvey.synth.writers import lamost_card_list, write_lamost, write_sdss  # noqa: E402

LAYOUTS = {
    "lamost_image": dict(survey="lamost", lamost_layout="image"),
    "lamost_table": dict(survey="lamost", lamost_layout="table"),
    "sdss SPECOBJ": dict(survey="sdss", sdss_hdu="SPECOBJ"),
    "sdss SPALL": dict(survey="sdss", sdss_hdu="SPALL"),
}


def astropy_writer(sim) -> bytes:
    """Baseline: astropy HDU objects per file, then writeto (verification included)."""
    spec, labels, p = sim.observed, sim.labels, sim.plan
    header = fits.Header()
    row_names = "Flux Inverse Wavelength Andmask Ormask" if p.layout == "lamost_image" else None
    for key, value, comment in lamost_card_list(spec, labels, row_names):
        header[key] = (value, comment)  # the same cards, whatever the layout
    wave = spec.wavelength.astype(np.float32)
    arrays = [
        spec.flux,
        spec.ivar,
        wave,
        spec.andmask.astype(np.float32),
        spec.ormask.astype(np.float32),
    ]
    if p.layout == "lamost_image":
        hdul = fits.HDUList([fits.PrimaryHDU(np.vstack(arrays), header=header)])
    elif p.layout == "lamost_table":
        n = spec.flux.size
        cols = [
            fits.Column(name=f"C{i}", format=f"{n}E", array=a.reshape(1, -1))
            for i, a in enumerate(arrays)
        ]
        hdul = fits.HDUList(
            [fits.PrimaryHDU(header=header), fits.BinTableHDU.from_columns(cols, name="COADD")]
        )
    else:
        cols = [fits.Column(name=f"c{i}", format="E", array=a) for i, a in enumerate(arrays)]
        meta = fits.BinTableHDU.from_columns(
            [fits.Column(name="CLASS", format="6A", array=[labels.survey_class]),
             fits.Column(name="Z", format="E", array=[labels.z])],
            name=p.layout,
        )  # fmt: skip
        hdul = fits.HDUList(
            [fits.PrimaryHDU(header=header), fits.BinTableHDU.from_columns(cols), meta]
        )
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    return buffer.getvalue()


def ours(sim) -> bytes:
    if sim.plan.survey == "lamost":
        return write_lamost(sim.observed, sim.labels, sim.plan.layout, False)
    return write_sdss(sim.observed, sim.labels, sim.plan.layout, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--templates", default=None)
    args = parser.parse_args()
    templates = resolve_templates(args.templates) or (
        "../shared/templates/redrock" if os.path.isdir("../shared/templates/redrock") else None
    )
    source = make_source(templates)
    print(f"source: {source.name}; {args.n} spectra per layout, {args.rounds} rounds\n")
    columns = ("simulate/s", "end-to-end/s", "astropy e2e/s", "writer ratio")
    print(f"{'layout':14s} " + " ".join(f"{c:>13s}" for c in columns))
    for name, options in LAYOUTS.items():
        config = SynthConfig(n=args.n, out="unused", templates=templates, seed=1, **options)
        sims = [simulate(config, source, i) for i in range(args.n)]  # warm caches
        assert fits.open(io.BytesIO(ours(sims[0])))[0].header is not None
        sim_rates, ours_rates, base_rates = [], [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            sims = [simulate(config, source, i) for i in range(args.n)]
            t_sim = time.perf_counter() - start
            start = time.perf_counter()
            for sim in sims:
                ours(sim)
            t_ours = time.perf_counter() - start
            start = time.perf_counter()
            for sim in sims:
                astropy_writer(sim)
            t_base = time.perf_counter() - start
            sim_rates.append(args.n / t_sim)
            ours_rates.append(args.n / (t_sim + t_ours))
            base_rates.append(args.n / (t_sim + t_base))
        e2e, base = statistics.median(ours_rates), statistics.median(base_rates)
        values = (statistics.median(sim_rates), e2e, base)
        print(f"{name:14s} " + " ".join(f"{v:13.0f}" for v in values) + f" {e2e / base:13.2f}")
    print("\nend-to-end = simulate + write bytes (no storage I/O); ratio = ours / astropy writer")


if __name__ == "__main__":
    main()
