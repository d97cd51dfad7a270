"""Publish a raysurvey catalog as HATS (HEALPix-partitioned Parquet) for LSDB.

    python jobs/publish_hats.py --catalog /catalogs/dr10-v1 --output /catalogs/dr10-v1-hats \\
        [--margin-arcsec 10] [--pixel-threshold 1000000] [--workers 1]

Reads only the committed chunks of the catalog (as ``raysurvey query`` does) and writes
a HATS collection (main catalog, margin cache, ``_no_coordinates.parquet`` for rows
without usable ra/dec, ``raysurvey_catalog.json`` provenance) with the hats-import
pipeline on Dask, local or s3://. The same as ``raysurvey publish-hats``; see
docs/catalog.md ("HATS / LSDB").
"""

from __future__ import annotations

import argparse
import sys

try:
    from raysurvey.driver_exit import run_driver
    from raysurvey.hats_publish import add_arguments, run_from_args
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    run_driver(main)
