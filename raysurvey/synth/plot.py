"""One spectrum per class of a release, read back from its files, on one PNG page.

For eyeballing a generated release against published spectra of each class: line
markers sit at the rest wavelengths of the features each class is known by, moved
to the observed frame with the true redshift.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq

from raysurvey.io import read_spectrum
from raysurvey.synth.summary import true_type

TYPE_ORDER = ("O", "B", "A", "F", "G", "K", "M", "Carbon", "WD", "GALAXY", "QSO")

#: Rest vacuum wavelengths (A) of marker lines, per group.
MARKERS: dict[str, tuple[tuple[str, float], ...]] = {
    "balmer": (("Ha", 6564.6), ("Hb", 4862.7), ("Hg", 4341.7), ("Hd", 4102.9)),
    "metals": (
        ("Ca K", 3934.8),
        ("Ca H", 3969.6),
        ("G", 4305.0),
        ("Mg b", 5175.0),
        ("Na D", 5894.0),
    ),
    "molecules": (
        ("TiO", 4955.0),
        ("TiO", 5167.0),
        ("TiO", 6159.0),
        ("TiO", 7054.0),
        ("C2", 4737.0),
        ("C2", 5165.0),
        ("C2", 5636.0),
        ("CN", 7874.0),
    ),
    "helium": (("He II", 4687.0), ("He I", 4472.7), ("He II", 5413.0)),
    "emission": (("[O II]", 3728.5), ("[O III]", 5008.2), ("[N II]", 6585.3), ("Ha", 6564.6)),
    "qso": (
        ("Lya", 1215.7),
        ("C IV", 1549.1),
        ("C III]", 1908.7),
        ("Mg II", 2799.1),
        ("Hb", 4862.7),
        ("Ha", 6564.6),
    ),
}
TYPE_MARKERS: dict[str, tuple[str, ...]] = {
    "O": ("helium", "balmer"),
    "B": ("helium", "balmer"),
    "A": ("balmer", "metals"),
    "F": ("balmer", "metals"),
    "G": ("balmer", "metals"),
    "K": ("metals", "balmer"),
    "M": ("molecules", "metals"),
    "Carbon": ("molecules",),
    "WD": ("balmer",),
    "GALAXY": ("emission", "metals"),
    "QSO": ("qso",),
}


def pick_examples(manifest_uri: str, min_snr: float) -> list[dict]:
    """The first row of each true type with S/N_r >= min_snr (else its best S/N)."""
    rows = pq.read_table(manifest_uri).to_pylist()
    chosen: dict[str, dict] = {}
    for row in rows:
        kind = true_type(row["true_class"], row["true_subclass"])
        best = chosen.get(kind)
        if best is None or (best["snr_r"] < min_snr and row["snr_r"] > best["snr_r"]):
            chosen[kind] = row
    return [chosen[k] for k in TYPE_ORDER if k in chosen]


def plot_release(manifest_uri: str, out: str, min_snr: float = 15.0) -> str:
    """Write the PNG sheet; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pick_examples(manifest_uri, min_snr)
    if not rows:
        raise ValueError(f"{manifest_uri} has no spectra")
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.55 * len(rows) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, row in zip(axes, rows, strict=True):
        spectrum = read_spectrum(row["uri"])
        good = ~spectrum.mask
        flux = np.where(good, spectrum.flux, np.nan)
        flux = flux / np.nanmedian(flux)
        ax.plot(spectrum.wavelength, flux, lw=0.5, color="k")
        top = np.nanpercentile(flux, 99.5) * 1.15
        ax.set_ylim(min(0.0, np.nanpercentile(flux, 0.5)), top)
        kind = true_type(row["true_class"], row["true_subclass"])
        shift = 1.0 + (row["true_z"] or 0.0)
        for group in TYPE_MARKERS[kind]:
            for name, rest in MARKERS[group]:
                observed = rest * shift
                if spectrum.wavelength[0] < observed < spectrum.wavelength[-1]:
                    ax.axvline(observed, color="tab:red", lw=0.5, alpha=0.6)
                    ax.text(
                        observed,
                        top * 0.97,
                        name,
                        fontsize=6,
                        color="tab:red",
                        ha="center",
                        va="top",
                    )
        label = (
            f"{kind}  {row['true_subclass'] or ''}  z={row['true_z']:.3f}  "
            f"S/N_r={row['snr_r']:.0f}  {row['layout']}"
        )
        ax.text(0.005, 0.06, label, transform=ax.transAxes, fontsize=7)
        ax.set_yticks([])
    axes[-1].set_xlabel("observed vacuum wavelength (A)")
    release = os.path.basename(os.path.dirname(manifest_uri)) or manifest_uri
    fig.suptitle(f"one spectrum per class: {release}", fontsize=9)
    fig.tight_layout(h_pad=0.1)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
