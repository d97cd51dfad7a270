"""Redshift evaluation: the metrics of ``jobs/evaluate.py --task redshift``.

Scores ``RedshiftFitter`` on a manifest: a synthetic release's ``manifest.parquet``
(reference ``true_z``: accuracy) or a real ``MANIFEST.csv`` such as ../shared/realdata
(reference: the survey pipeline's ``z``, so the numbers are agreement with the
pipeline, not accuracy). Template fitting is not trained, so every synthetic row is
held out. Per class (and galaxies + QSOs together) and per S/N bin:

- ``frac_within``: fraction with |dz| / (1 + z) < 0.003;
- ``catastrophic_1000``, ``catastrophic_3000``: fraction with c |dz| / (1 + z) above
  1000 / 3000 km/s (Spectromer's failure thresholds; its own definition uses 1000 km/s
  for galaxies and stars and 3000 km/s for QSOs: ``catastrophic``);
- ``nmad``: 1.4826 median |x - median x| of dz / (1 + z);
- ``unreliable``: fraction flagged Z_UNRELIABLE, and ``flagged_catastrophic``: fraction
  of the catastrophic failures that are flagged.

Writes ``metrics.json``, ``redshift.md`` (the tables), ``predictions.csv`` and
``z_pred_vs_z.png`` to ``out``.
"""

from __future__ import annotations

import csv
import json
import os
import time

import fsspec
import numpy as np

from raysurvey.redshift.fitter import RedshiftFitter
from raysurvey.redshift.templates import C_KMS

WITHIN = 0.003
SNR_BINS = (0.0, 2.0, 5.0, 10.0, 20.0, np.inf)
CATASTROPHIC_KMS = {"GALAXY": 1000.0, "STAR": 1000.0, "QSO": 3000.0}
EXTRAGALACTIC = ("GALAXY", "QSO")


def redshift_metrics(z_true, z_pred, classes, unreliable) -> dict:
    """The metrics above for one group of rows (a NaN prediction counts as a failure)."""
    z_true = np.asarray(z_true, np.float64)
    z_pred = np.asarray(z_pred, np.float64)
    unreliable = np.asarray(unreliable, bool)
    n = int(z_true.size)
    if n == 0:
        return {"n": 0}
    dz = (z_pred - z_true) / (1.0 + z_true)
    adz = np.where(np.isfinite(dz), np.abs(dz), np.inf)
    limit = np.array([CATASTROPHIC_KMS.get(str(c).upper(), 1000.0) for c in classes])
    catastrophic = adz * C_KMS > limit
    finite = dz[np.isfinite(dz)]
    nmad = float(1.4826 * np.median(np.abs(finite - np.median(finite)))) if finite.size else None
    return {
        "n": n,
        "frac_within": float(np.mean(adz < WITHIN)),
        "catastrophic_1000": float(np.mean(adz * C_KMS > 1000.0)),
        "catastrophic_3000": float(np.mean(adz * C_KMS > 3000.0)),
        "catastrophic": float(np.mean(catastrophic)),
        "nmad": nmad,
        "unreliable": float(np.mean(unreliable)),
        "n_catastrophic": int(catastrophic.sum()),
        "flagged_catastrophic": (
            float(np.mean(unreliable[catastrophic])) if catastrophic.any() else None
        ),
        "flagged_good": (
            float(np.mean(unreliable[~catastrophic])) if (~catastrophic).any() else None
        ),
    }


def grouped_metrics(z_true, z_pred, classes, unreliable, snr, bins=SNR_BINS) -> dict:
    """``redshift_metrics`` per class, for galaxies + QSOs, and per S/N bin of each."""
    classes = np.asarray(classes).astype(str)
    groups = {c: classes == c for c in sorted(set(classes))}
    groups["GALAXY+QSO"] = np.isin(classes, EXTRAGALACTIC)
    out = {}
    for name, sel in groups.items():
        entry = redshift_metrics(z_true[sel], z_pred[sel], classes[sel], unreliable[sel])
        entry["by_snr"] = []
        for lo, hi in zip(bins[:-1], bins[1:], strict=True):
            b = sel & (snr >= lo) & (snr < hi)
            if b.any():
                m = redshift_metrics(z_true[b], z_pred[b], classes[b], unreliable[b])
                entry["by_snr"].append({"snr_lo": lo, "snr_hi": hi} | m)
        gt5 = sel & (snr > 5)
        entry["snr_gt_5"] = redshift_metrics(
            z_true[gt5], z_pred[gt5], classes[gt5], unreliable[gt5]
        )
        out[name] = entry
    return out


def read_manifest_rows(manifest: str) -> tuple[list[dict], str]:
    """Rows (uri, class, z_ref, snr) of a release manifest or a real MANIFEST.csv.

    Returns the rows and the reference: ``"truth"`` (synthetic ``true_z``) or
    ``"pipeline"``.
    """
    if manifest.endswith(".csv"):
        base = os.path.dirname(os.path.abspath(manifest))
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        out = [
            {
                "uri": os.path.join(base, r["path"]),
                "class": r["class"].upper(),
                "pipeline_class": r["class"].upper(),
                "z": float(r["z"]),
                "snr": float(r.get("snr") or "nan"),
            }
            for r in rows
        ]
        return out, "pipeline"
    import pyarrow.parquet as pq

    table = pq.read_table(manifest).to_pylist()
    truth = "true_z" in (table[0] if table else {})
    out = []
    for r in table:
        out.append(
            {
                "uri": r["uri"],
                "class": str(r["true_class"] if truth else r["class"]).upper(),
                "pipeline_class": str(r["class"]).upper(),
                "z": float(r["true_z"] if truth else r["z"]),
                "snr": float(r.get("snr_r") if r.get("snr_r") is not None else np.nan),
            }
        )
    return out, "truth" if truth else "pipeline"


def load_grid(rows: list[dict], n_pix: int):
    """Read and grid every row; returns (flux, ivar, grid snr, kept row indices, errors)."""
    from raysurvey.io import read_spectrum
    from raysurvey.spectra import to_grid

    flux, ivar, snr, kept, errors = [], [], [], [], []
    for i, r in enumerate(rows):
        try:
            g = to_grid(read_spectrum(r["uri"]), n_pix=n_pix)
        except Exception as exc:  # noqa: BLE001 - unreadable files are counted, not fatal
            errors.append({"uri": r["uri"], "error": f"{type(exc).__name__}: {exc}"})
            continue
        flux.append(g.flux)
        ivar.append(g.ivar)
        snr.append(g.snr)
        kept.append(i)
    shape = (0, n_pix)
    return (
        np.array(flux) if flux else np.zeros(shape, np.float32),
        np.array(ivar) if ivar else np.zeros(shape, np.float32),
        np.array(snr),
        kept,
        errors,
    )


def evaluate_redshift(
    manifest: str,
    out: str,
    templates_dir: str | None = None,
    class_source: str = "given",
    classes: tuple[str, ...] = ("GALAXY", "QSO", "STAR"),
    n_pix: int = 3700,
    device: str = "cpu",
) -> dict:
    """Fit every row of ``manifest`` of the given classes and write the report to ``out``.

    Parameters
    ----------
    class_source : {"given", "pipeline", "unknown"}
        Class handed to the fitter: the manifest's reference class (synthetic truth, or
        the pipeline class of a real manifest), the pipeline label (synthetic releases
        carry label noise), or none (every class fitted, lowest chi^2 wins).
    classes : tuple of str
        Reference classes scored (rows of other classes are skipped).
    """
    rows, reference = read_manifest_rows(manifest)
    rows = [r for r in rows if r["class"] in classes]
    flux, ivar, grid_snr, kept, errors = load_grid(rows, n_pix)
    rows = [rows[i] for i in kept]
    fitter = RedshiftFitter(templates_dir, device=device)
    given = {
        "given": [r["class"] for r in rows],
        "pipeline": [r["pipeline_class"] if r["pipeline_class"] in classes else None for r in rows],
        "unknown": None,
    }[class_source]
    t0 = time.process_time()
    fit = fitter.fit(flux, ivar, given) if rows else {}
    cpu_s = time.process_time() - t0
    z_true = np.array([r["z"] for r in rows])
    cls = np.array([r["class"] for r in rows])
    snr = np.array([r["snr"] for r in rows])
    snr = np.where(np.isfinite(snr), snr, grid_snr) if rows else snr
    z_pred = fit.get("z", np.array([]))
    unreliable = fit.get("unreliable", np.array([], bool))
    result = {
        "task": "redshift",
        "manifest": manifest,
        "reference": (
            "synthetic truth (accuracy)"
            if reference == "truth"
            else "survey pipeline z (agreement with the survey pipeline, not accuracy)"
        ),
        "class_source": class_source,
        "n_pix": n_pix,
        "n_rows": len(rows) + len(errors),
        "n_evaluated": len(rows),
        "n_unreadable": len(errors),
        "unreadable": errors,
        "cpu_ms_per_spectrum": 1e3 * cpu_s / max(len(rows), 1),
        "per_class": grouped_metrics(z_true, z_pred, cls, unreliable, snr) if rows else {},
    }
    if rows:
        result["class_agreement"] = float(np.mean(fit["spectype"] == cls))
    write_redshift_report(result, rows, fit, out)
    return result


def write_redshift_report(result: dict, rows: list[dict], fit: dict, out: str) -> None:
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/metrics.json", "w") as f:
        json.dump(result, f, indent=2, default=float)
    with fs.open(f"{path}/redshift.md", "w") as f:
        f.write(markdown_table(result))
    if not rows:
        return
    with fs.open(f"{path}/predictions.csv", "w") as f:
        w = csv.writer(f)
        w.writerow(["uri", "class", "snr", "z_ref", "z_pred", "z_err", "unreliable", "spectype"])
        for i, r in enumerate(rows):
            w.writerow(
                [
                    r["uri"],
                    r["class"],
                    f"{r['snr']:.3f}",
                    r["z"],
                    f"{fit['z'][i]:.6f}",
                    f"{fit['z_err'][i]:.2e}",
                    int(fit["unreliable"][i]),
                    fit["spectype"][i],
                ]
            )
    plot_z(rows, fit, fs, f"{path}/z_pred_vs_z.png")


def markdown_table(result: dict) -> str:
    lines = [
        f"Reference: {result['reference']}; class given: {result['class_source']}; "
        f"{result['n_evaluated']} spectra ({result['n_unreadable']} unreadable), "
        f"{result['cpu_ms_per_spectrum']:.2f} CPU ms a spectrum.",
        "",
        "| class | S/N | n | within 0.003 | cat. 1000 km/s | cat. 3000 km/s | NMAD | "
        "unreliable | catastrophic flagged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name, snr, m):
        flagged = m.get("flagged_catastrophic")
        flagged = "-" if flagged is None else f"{flagged:.2f} of {m['n_catastrophic']}"
        nmad = m.get("nmad")
        return (
            f"| {name} | {snr} | {m['n']} | {m['frac_within']:.3f} | "
            f"{m['catastrophic_1000']:.3f} | {m['catastrophic_3000']:.3f} | "
            f"{'-' if nmad is None else f'{nmad:.1e}'} | {m['unreliable']:.3f} | "
            f"{flagged} |"
        )

    for name, entry in result["per_class"].items():
        if not entry.get("n"):
            continue
        lines.append(row(name, "all", entry))
        for b in entry["by_snr"]:
            lines.append(row(name, f"{b['snr_lo']:g}-{b['snr_hi']:g}", b))
    return "\n".join(lines) + "\n"


def plot_z(rows, fit, fs, uri: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raysurvey.train.figures import save_png

    z_true = np.array([r["z"] for r in rows])
    cls = np.array([r["class"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c, colour in (("GALAXY", "tab:orange"), ("QSO", "tab:blue"), ("STAR", "tab:grey")):
        sel = cls == c
        if sel.any():
            ax.scatter(z_true[sel], fit["z"][sel], s=10, c=colour, label=c, alpha=0.7)
    bad = fit["unreliable"]
    if bad.any():
        ax.scatter(
            z_true[bad],
            fit["z"][bad],
            s=40,
            facecolors="none",
            edgecolors="red",
            label="unreliable",
        )
    top = max(float(np.nanmax(z_true)), float(np.nanmax(fit["z"]))) * 1.05 + 0.05
    ax.plot([0, top], [0, top], "k-", lw=0.5)
    ax.set_xlabel("reference z")
    ax.set_ylabel("z_pred")
    ax.set_xlim(-0.05, top)
    ax.set_ylim(-0.05, top)
    ax.legend(loc="upper left")
    save_png(fig, fs, uri)
