"""A PNG contact sheet of every modality for a few spectra: to look at them.

Rows are spectra (read back from a release through the readers, one per true class
where the manifest has truth columns), columns are modalities: images as drawn,
flux1d as a line, audio features as heat maps. This is a plain matplotlib figure
for people, not the hot path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow.parquet as pq

from raysurvey.modalities import compute
from raysurvey.modalities.images import IMAGE_SIZE

SHEET_MODALITIES = ("flux1d", "simple", "overlap", "map2d", "line512", "mel", "mfcc", "lfcc")


def pick_rows(manifest: str, n: int) -> list[dict]:
    """Up to ``n`` manifest rows, one per true class first (then in file order)."""
    rows = pq.read_table(manifest).to_pylist()
    by_class: dict[str, dict] = {}
    for row in rows:
        key = row.get("true_subclass") or row.get("true_class") or row.get("class") or ""
        key = key[:1] if key and key[0] in "OBAFGKM" and key != "Carbon" else key
        by_class.setdefault(key, row)
    chosen = list(by_class.values())[:n]
    for row in rows:
        if len(chosen) >= n:
            break
        if row not in chosen:
            chosen.append(row)
    return chosen


def plot_modalities(
    manifest: str,
    out: str,
    n: int = 6,
    modalities: Sequence[str] = SHEET_MODALITIES,
    options: dict | None = None,
) -> str:
    """Decode ``n`` spectra of a release, compute ``modalities``, write a PNG sheet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raysurvey.data import decode_uris

    rows = pick_rows(manifest, n)
    decoded = decode_uris([r["uri"] for r in rows])
    batch = {"flux": decoded["flux"], "survey": np.array([r["survey"] for r in rows])}
    options = options or {}
    results = {m: compute(m, batch, **options.get(m, {})) for m in modalities}
    fig, axes = plt.subplots(
        len(rows), len(modalities), figsize=(2.2 * len(modalities), 2.2 * len(rows)), squeeze=False
    )
    for i, row in enumerate(rows):
        label = row.get("true_subclass") or row.get("true_class") or row.get("class") or "?"
        for j, name in enumerate(modalities):
            ax = axes[i, j]
            value = results[name][i]
            if decoded["status"][i] != "ok":
                ax.text(0.5, 0.5, decoded["error"][i][:40], ha="center", fontsize=6, wrap=True)
            elif value.ndim == 3:
                ax.imshow(value, extent=(0, IMAGE_SIZE, IMAGE_SIZE, 0))
            elif value.ndim == 2:
                ax.imshow(value, aspect="auto", origin="lower", cmap="magma")
            else:
                ax.plot(value, lw=0.4, color="k")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{row['survey']} {label}", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
