"""A plain-text summary table of spectra, for the CLI and ``make demo``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from raysurvey.io import Spectrum, SpectrumReadError
from raysurvey.spectra import to_grid

COLUMNS = ("file", "layout", "id", "class", "subclass", "z", "pixels", "lambda (A)", "good", "S/N")


def spectrum_row(name: str, spectrum: Spectrum) -> tuple[str, ...]:
    """One summary row: native layout and labels plus grid quality."""
    meta = spectrum.meta
    grid = to_grid(spectrum)
    ident = meta.get("obsid") or meta.get("specobjid") or "-"
    z = meta.get("z")
    return (
        name,
        str(meta.get("layout")),
        str(ident),
        str(meta.get("class") or "-"),
        str(meta.get("subclass") or "-"),
        "-" if z is None else f"{z:.5f}",
        str(len(spectrum)),
        f"{spectrum.wavelength[0]:.0f}-{spectrum.wavelength[-1]:.0f}",
        f"{grid.good_fraction:.3f}",
        f"{grid.snr:.1f}",
    )


def error_row(name: str, error: SpectrumReadError) -> tuple[str, ...]:
    return (name, "ERROR", error.code, error.message[:60], "", "", "", "", "", "")


def format_table(rows: Iterable[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    """Left-aligned fixed-width text table."""
    rows = [tuple(columns)] + [tuple(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
