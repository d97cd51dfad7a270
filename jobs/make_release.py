"""Generate a synthetic release at scale on Ray: the same bytes as ``raysurvey synth``.

    python jobs/make_release.py --n 1000000 --out s3://bucket/synth-dr1 \\
        --templates /data/redrock --survey mixed --gzip --chunk-size 2000
    # with each spectrum's 2D stripes and g, r, i cutouts (MAC-Net, DRC-Net inputs):
    python jobs/make_release.py --n 100000 --out s3://bucket/synth-2d \\
        --templates /data/redrock --with-2d --with-photometry --gzip
    ray job submit --working-dir . -- python jobs/make_release.py --n ... --out ...

Each chunk of indices is a Ray task that writes its files straight to storage and
returns its manifest rows; the driver keeps at most ``--max-in-flight`` chunks
running and streams finished chunks into manifest.parquet in index order, so memory
stays bounded for any ``--n``. Spectra depend only on (config, index), so the output
equals the single-process generator's whatever the chunking or worker count.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator

try:
    import pyarrow as pa
    import ray

    from raysurvey.cli import add_synth_arguments, synth_config
    from raysurvey.driver_exit import run_driver
    from raysurvey.synth import SynthConfig, generate_chunk, write_release
    from raysurvey.synth.summary import release_summary
except ModuleNotFoundError as error:  # run by a python that lacks the project
    sys.exit(
        f"raysurvey's dependencies are not importable from {sys.executable} ({error}): "
        "activate the venv (source .venv/bin/activate) or run in the project's image"
    )


@ray.remote(num_cpus=1, max_retries=3)
def _chunk_task(config: SynthConfig, start: int, stop: int) -> pa.Table:
    # A retried task rewrites the same files with the same bytes: idempotent.
    return generate_chunk(config, start, stop)


def ray_chunks(config: SynthConfig, max_in_flight: int):
    """A ``run_chunks`` for ``write_release``: Ray tasks, results yielded in order."""

    def run(bounds: Iterable[tuple[int, int]]) -> Iterator[pa.Table]:
        pending = list(bounds)
        in_flight: dict[int, ray.ObjectRef] = {}
        next_to_submit = next_to_yield = 0
        while next_to_yield < len(pending):
            while next_to_submit < len(pending) and len(in_flight) < max_in_flight:
                start, stop = pending[next_to_submit]
                in_flight[next_to_submit] = _chunk_task.remote(config, start, stop)
                next_to_submit += 1
            table = ray.get(in_flight.pop(next_to_yield))
            next_to_yield += 1
            yield table

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synth_arguments(parser)
    parser.add_argument("--address", help="Ray cluster address (default: auto / local)")
    parser.add_argument(
        "--max-in-flight", type=int, default=0, help="chunks running at once (default: 2 x CPUs)"
    )
    args = parser.parse_args(argv)
    config = synth_config(args)
    if config.templates:  # workers on other nodes need the same path: make it absolute here
        config = SynthConfig(**{**config.__dict__, "templates": os.path.abspath(config.templates)})
    ray.init(address=args.address, ignore_reinit_error=True, log_to_driver=False)
    in_flight = args.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    manifest = write_release(
        config, chunk_size=args.chunk_size, run_chunks=ray_chunks(config, in_flight)
    )
    print(release_summary(manifest))
    return 0


if __name__ == "__main__":
    run_driver(main)
