"""The ``raysurvey`` command line (also ``python -m raysurvey.cli``).

Subcommands are small functions registered in ``COMMANDS``; later stages add theirs
(synth, query, ...) the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from raysurvey import __version__


def cmd_read(args: argparse.Namespace) -> int:
    """Read survey files (paths or URIs) and print one summary row each."""
    from raysurvey.io import SpectrumReadError, read_spectrum
    from raysurvey.summary import error_row, format_table, spectrum_row

    rows, failures = [], 0
    for source in args.sources:
        name = os.path.basename(source.rstrip("/")) or source
        try:
            rows.append(spectrum_row(name, read_spectrum(source)))
        except SpectrumReadError as exc:
            failures += 1
            rows.append(error_row(name, exc))
    print(format_table(rows))
    print(f"\n{len(rows) - failures} read, {failures} failed")
    return 1 if failures else 0


def cmd_readers(args: argparse.Namespace) -> int:
    """List the registered survey layouts in the order they are tried."""
    from raysurvey.io import list_readers

    for reader in list_readers():
        print(f"{reader.name:14s} {reader.survey:7s} {reader.description}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Write one example file per layout (plain and gzip), read them back, summarise."""
    from raysurvey.io.examples import write_examples

    directory = args.out or tempfile.mkdtemp(prefix="raysurvey-demo-")
    paths = write_examples(directory)
    print(f"raysurvey {__version__} demo: {len(paths)} example files in {directory}\n")
    return cmd_read(argparse.Namespace(sources=paths))


COMMANDS: dict[
    str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]
] = {
    "read": (
        cmd_read,
        lambda p: p.add_argument("sources", nargs="+", help="paths or URIs (s3://...)"),
    ),
    "readers": (cmd_readers, lambda p: None),
    "demo": (cmd_demo, lambda p: p.add_argument("--out", help="directory for the example files")),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raysurvey", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"raysurvey {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, configure) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0])
        configure(sub_parser)
        sub_parser.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
