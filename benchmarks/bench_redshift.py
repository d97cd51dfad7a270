"""Redshift stage: cost per spectrum (one core, or a GPU) and real-data agreement, one run.

    python benchmarks/bench_redshift.py --templates ../shared/templates/redrock
    python benchmarks/bench_redshift.py --templates DIR --device cuda --repeat 40

Reads the real galaxies, QSOs and stars of ../shared/realdata (env RAYSURVEY_REALDATA,
or ``--realdata``; MANIFEST.csv there), puts them on the common grid, and fits them
with ``RedshiftFitter`` given the pipeline class, then with the class unknown. Prints
the cost per spectrum (wall and process CPU time; on CPU one thread, OMP/MKL too, so
"per core" means one core) as a ratio to Redrock's 1.10 CPU-seconds a spectrum, and
the fraction with |dz| / (1 + z) < 0.003 against the pipeline z per class.
``--grid-cache FILE.npz`` stores the gridded spectra (read from it when it exists), so
a machine without the readers' dependencies can time the fit alone.
"""

from __future__ import annotations

import argparse
import os
import sys

REDROCK_S = 1.10  # CPU seconds a spectrum, measured on 566 real files (issue 20)


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", help="Redrock template directory (else RAYSURVEY_TEMPLATES)")
    p.add_argument("--realdata", help="real-data folder with MANIFEST.csv")
    p.add_argument("--grid-cache", help="npz of gridded spectra (written if missing)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: one core)")
    p.add_argument("--repeat", type=int, default=3, help="copies of the set timed at once")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def load(args):
    import csv

    import numpy as np

    if args.grid_cache and os.path.exists(args.grid_cache):
        d = np.load(args.grid_cache, allow_pickle=True)
        return d["flux"], d["ivar"], d["cls"], d["z"]
    from raysurvey.io import read_spectrum
    from raysurvey.spectra import to_grid

    real = args.realdata or os.environ.get("RAYSURVEY_REALDATA")
    if real is None:
        here = os.path.dirname(os.path.abspath(__file__))
        real = os.path.join(here, "..", "..", "shared", "realdata")
    manifest = os.path.join(real, "MANIFEST.csv")
    if not os.path.exists(manifest):
        sys.exit(f"no real data: {manifest} is missing (set RAYSURVEY_REALDATA or --realdata)")
    flux, ivar, cls, z = [], [], [], []
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            if row["class"] not in ("GALAXY", "QSO", "STAR"):
                continue
            try:
                g = to_grid(read_spectrum(os.path.join(real, row["path"])))
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                print(f"unreadable: {row['path']}: {exc}")
                continue
            flux.append(g.flux)
            ivar.append(g.ivar)
            cls.append(row["class"])
            z.append(float(row["z"]))
    out = np.array(flux), np.array(ivar), np.array(cls), np.array(z)
    if args.grid_cache:
        np.savez(args.grid_cache, flux=out[0], ivar=out[1], cls=out[2], z=out[3])
    return out


def main(argv=None) -> int:
    args = _args(argv)
    if args.device == "cpu":
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import time

    import numpy as np
    import torch

    from raysurvey.redshift import RedshiftFitter

    flux, ivar, cls, z = load(args)
    fitter = RedshiftFitter(
        args.templates,
        device=args.device,
        batch_size=args.batch_size,
        num_threads=args.threads if args.device == "cpu" else None,
    )
    cuda = args.device.startswith("cuda")

    def timed(sel, classes):
        f = np.concatenate([flux[sel]] * args.repeat)
        w = np.concatenate([ivar[sel]] * args.repeat)
        c = None if classes is None else list(classes[sel]) * args.repeat
        fitter.fit(f[:8], w[:8], None if c is None else c[:8])  # warm-up (caches, kernels)
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        out = fitter.fit(f, w, c)
        if cuda:
            torch.cuda.synchronize()
        n = len(f)
        wall, cpu = (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n
        first = {k: v[: sel.sum()] for k, v in out.items()}
        return first, wall, cpu

    ez = np.isin(cls, ("GALAXY", "QSO"))
    star = cls == "STAR"
    where = f"{args.device}" + (f", {args.threads} thread(s)" if not cuda else "")
    print(f"redshift benchmark on {len(cls)} real spectra ({ez.sum()} galaxies+QSOs), {where}")
    print("| set | class given | ms a spectrum (wall) | CPU ms | x Redrock (1.10 s) | agree |")
    print("|---|---|---|---|---|---|")
    for name, sel, given in (
        ("galaxies+QSOs", ez, cls),
        ("stars", star, cls),
        ("galaxies+QSOs", ez, None),
        ("all", np.ones_like(ez), None),
    ):
        out, wall, cpu = timed(sel, given)
        dz = np.abs(out["z"] - z[sel]) / (1 + z[sel])
        agree = np.mean(dz < 0.003)
        cost = wall if cuda else cpu
        print(
            f"| {name} | {'pipeline' if given is not None else 'unknown'} | {1e3 * wall:.2f} | "
            f"{1e3 * cpu:.2f} | {REDROCK_S / cost:.0f}x | {agree:.4f} |"
        )
        if name == "galaxies+QSOs" and given is not None:
            per = {c: f"{np.mean(dz[cls[sel] == c] < 0.003):.4f}" for c in ("GALAXY", "QSO")}
            flagged = out["unreliable"]
            print(
                f"|   per class {per}, Z_UNRELIABLE on {flagged[dz >= 0.003].sum()} of "
                f"{(dz >= 0.003).sum()} disagreements and {flagged[dz < 0.003].sum()} of "
                f"{(dz < 0.003).sum()} agreements | | | | | |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
