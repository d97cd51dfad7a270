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


def _groups(rows: list[dict], truth: bool) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        cls = row.get("true_class") if truth else row.get("class")
        if cls in ("STAR", "GALAXY", "QSO") and not row.get("read_error"):
            groups.setdefault((cls, row["survey"]), []).append(row)
    return groups


def _typical(rows: list[dict], k: int) -> list[dict]:
    """``k`` rows spread over the S/N quantiles (25 %, 50 %, 75 % for k = 3)."""
    rows = sorted(rows, key=lambda r: r.get("snr_r") or 0.0)
    picks = [rows[int(len(rows) * (i + 1) / (k + 1))] for i in range(min(k, len(rows)))]
    return picks


def plot_compare(synth_uri: str, real_uri: str, out: str, per_group: int = 2) -> str:
    """Synthetic (left) and real (right) spectra side by side per class and survey, on
    the common grid the models see, at evenly spaced S/N quantiles of each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raysurvey.spectra import to_grid
    from raysurvey.spectra.grid import grid_wavelength

    synth = _groups(pq.read_table(synth_uri).to_pylist(), truth=True)
    real = _groups(pq.read_table(real_uri).to_pylist(), truth=False)
    keys = sorted(set(synth) & set(real))
    if not keys:
        raise ValueError("no (class, survey) group is in both manifests")
    n_rows = len(keys) * per_group
    fig, axes = plt.subplots(n_rows, 2, figsize=(14, 1.4 * n_rows + 0.6), sharex=True)
    axes = np.atleast_2d(axes)
    wave = grid_wavelength()
    for g, key in enumerate(keys):
        for col, groups in enumerate((synth, real)):
            for i, row in enumerate(_typical(groups[key], per_group)):
                ax = axes[g * per_group + i, col]
                flux = to_grid(read_spectrum(row["uri"])).flux
                lo, hi = np.nanpercentile(flux, [1, 99])
                ax.plot(wave, flux, lw=0.4, color="k")
                ax.set_ylim(lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo))
                z = row.get("true_z") if col == 0 else row.get("z")
                label = (
                    f"{'synthetic' if col == 0 else 'real'} {key[0]} {key[1]}  "
                    f"z={z or 0:.3f}  S/N_r={row.get('snr_r') or 0:.1f}"
                )
                ax.text(0.005, 0.05, label, transform=ax.transAxes, fontsize=7)
                ax.set_yticks([])
    for ax in axes[-1]:
        ax.set_xlabel("observed vacuum wavelength (A), common grid")
    fig.suptitle("synthetic (left) and real (right) spectra, as the models see them", fontsize=9)
    fig.tight_layout(h_pad=0.1)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
