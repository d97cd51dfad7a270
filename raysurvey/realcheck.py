"""``raysurvey realcheck``: how a bundle agrees with the survey pipelines on real files.

Classifies a labelled real set (``raysurvey.realdata``) through ``classify_release``,
then joins the catalog to the set's labels and reports agreement per survey and class,
per S/N bin, the confusion matrix (text and PNG), the first-letter agreement of the
stellar types when a stellar8 bundle is chained, and every miss. Pipeline labels are
not truth, so the numbers are agreement, never accuracy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from raysurvey.labels import CLASS3, STELLAR8, class3_label, stellar8_label

CATALOG_COLUMNS = ("uri", "status", "error", "pred_class", "pred_subclass", "confidence")
SNR_BINS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, float("inf")))


@dataclass
class AgreementReport:
    """Agreement figures of one catalog against a labelled real set."""

    by_group: dict[tuple[str, str], tuple[int, int]]  # (program, class) -> (agree, n)
    by_class: dict[str, tuple[int, int]]
    by_snr: dict[str, tuple[int, int]]
    confusion: dict[tuple[str, str], int]  # (pipeline class, predicted) -> n
    overall: tuple[int, int]
    stellar_first_letter: tuple[int, int] | None
    misses: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    excluded: int = 0

    @property
    def overall_fraction(self) -> float:
        agree, n = self.overall
        return agree / n if n else float("nan")

    def class_fraction(self, name: str) -> float:
        agree, n = self.by_class.get(name, (0, 0))
        return agree / n if n else float("nan")

    def lines(self, max_misses: int = 40) -> list[str]:
        out = ["agreement with the survey pipeline (pipeline labels are not truth)"]
        out.append(f"  {'program':8s} {'class':8s} {'agree':>7s} {'n':>5s} {'%':>7s}")
        for (program, name), (agree, n) in sorted(self.by_group.items()):
            out.append(f"  {program:8s} {name:8s} {agree:7d} {n:5d} {100 * agree / n:6.1f}%")
        for name, (agree, n) in sorted(self.by_class.items()):
            out.append(f"  {'all':8s} {name:8s} {agree:7d} {n:5d} {100 * agree / n:6.1f}%")
        agree, n = self.overall
        out.append(f"  {'all':8s} {'all':8s} {agree:7d} {n:5d} {100 * self.overall_fraction:6.1f}%")
        if self.stellar_first_letter:
            good, total = self.stellar_first_letter
            out.append(
                f"  LAMOST stars, first letter of the type: {good}/{total} "
                f"({100 * good / max(total, 1):.1f}%)"
            )
        out.append("per S/N bin (snr_r):")
        for name, (agree, n) in self.by_snr.items():
            out.append(f"  {name:10s} {agree:5d}/{n:<5d} {100 * agree / max(n, 1):6.1f}%")
        predicted = sorted({p for _, p in self.confusion})
        out.append("confusion (rows: pipeline class, columns: prediction):")
        out.append("  " + " " * 8 + "".join(f"{p:>8s}" for p in predicted))
        for name in CLASS3:
            cells = "".join(f"{self.confusion.get((name, p), 0):8d}" for p in predicted)
            out.append(f"  {name:8s}{cells}")
        if self.errors:
            out.append(f"read errors ({len(self.errors)}, not counted):")
            out += [f"  {e['uri']}: {e['error']}" for e in self.errors]
        out.append(f"misses ({len(self.misses)}):")
        for miss in self.misses[:max_misses]:
            out.append(
                f"  {miss['program']:6s} {miss['class']:6s} -> {miss['pred_class']:6s} "
                f"p={miss['confidence']:.2f} snr={miss['snr']:.1f} z={miss['z']} "
                f"{Path(miss['uri']).name}"
            )
        if len(self.misses) > max_misses:
            out.append(f"  ... {len(self.misses) - max_misses} more")
        return out


def _snr_bin(snr: float | None) -> str:
    value = -1.0 if snr is None or not np.isfinite(snr) else float(snr)
    for low, high in SNR_BINS:
        if low <= value < high:
            return f"{low:g}-{high:g}" if np.isfinite(high) else f">{low:g}"
    return "unknown"


def agreement_report(catalog: pa.Table, labels: pa.Table) -> AgreementReport:
    """Join ``catalog`` (classify_release rows) to ``labels`` (a real-set manifest) by
    URI and count agreement of ``pred_class`` with the pipeline class."""
    by_uri = {row["uri"]: row for row in labels.to_pylist()}
    group: dict = defaultdict(lambda: [0, 0])
    per_class: dict = defaultdict(lambda: [0, 0])
    per_snr: dict = {_snr_bin(low): [0, 0] for low, _ in SNR_BINS}
    confusion: Counter = Counter()
    letters = [0, 0]
    misses, errors, excluded = [], [], 0
    columns = catalog.column_names
    for row in catalog.to_pylist():
        label = by_uri.get(row["uri"])
        if label is None:
            continue
        program = label.get("program") or str(label.get("survey", "")).upper()
        if row["status"] != "ok":
            errors.append({"uri": row["uri"], "error": row.get("error")})
            continue
        truth = class3_label(label.get("class"))
        predicted = row["pred_class"]
        stellar = stellar8_label(label.get("class"), label.get("subclass"))
        sub_pred = row.get("pred_subclass") if "pred_subclass" in columns else None
        if predicted in STELLAR8:  # a stellar8 bundle on its own: its label is the type
            sub_pred, predicted = predicted, None
        if program == "LAMOST" and stellar is not None and sub_pred:
            letters[0] += stellar == sub_pred  # the type letter: "dM0" is M, "G7" is G
            letters[1] += 1
        if truth is None or predicted is None:
            excluded += 1
            continue
        hit = predicted == truth
        for counter in (group[(program, truth)], per_class[truth]):
            counter[0] += hit
            counter[1] += 1
        snr = label.get("snr_r")
        bucket = per_snr.setdefault(_snr_bin(snr), [0, 0])
        bucket[0] += hit
        bucket[1] += 1
        confusion[(truth, predicted)] += 1
        if not hit:
            misses.append(
                {
                    "uri": row["uri"],
                    "program": program,
                    "class": truth,
                    "pred_class": predicted,
                    "confidence": float(row.get("confidence") or float("nan")),
                    "snr": float(snr) if snr is not None else float("nan"),
                    "z": label.get("z"),
                }
            )
    total = [sum(v[0] for v in per_class.values()), sum(v[1] for v in per_class.values())]
    return AgreementReport(
        by_group={k: tuple(v) for k, v in group.items()},
        by_class={k: tuple(v) for k, v in per_class.items()},
        by_snr={k: tuple(v) for k, v in per_snr.items() if v[1]},
        confusion=dict(confusion),
        overall=tuple(total),
        stellar_first_letter=tuple(letters) if letters[1] else None,
        misses=sorted(misses, key=lambda m: (m["program"], m["class"], m["uri"])),
        errors=errors,
        excluded=excluded,
    )


def plot_confusion(report: AgreementReport, path: str, title: str = "") -> None:
    """The confusion matrix as a PNG (rows: pipeline class, columns: prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted = sorted({p for _, p in report.confusion} | set(CLASS3))
    matrix = np.array([[report.confusion.get((t, p), 0) for p in predicted] for t in CLASS3])
    fig, ax = plt.subplots(figsize=(4.5, 3.8), dpi=120)
    ax.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(predicted)), predicted)
    ax.set_yticks(range(len(CLASS3)), CLASS3)
    ax.set_xlabel("raysurvey prediction")
    ax.set_ylabel("survey pipeline class")
    ax.set_title(title or f"agreement {100 * report.overall_fraction:.1f}%", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_realcheck(
    bundles: list[str],
    data_dir: str | None,
    out_dir: str,
    *,
    manifest_uri: str | None = None,
    chunk_size: int = 1000,
    log=print,
) -> AgreementReport:
    """Classify the labelled real set in ``data_dir`` (or the manifest ``manifest_uri``,
    e.g. from ``raysurvey manifest``) with ``bundles`` into ``out_dir/catalog`` and
    report agreement (also written to ``out_dir``)."""
    import fsspec
    import pyarrow.parquet as pq

    from raysurvey.infer import ClassifyConfig, classify_release
    from raysurvey.infer.query import query
    from raysurvey.realdata import write_realset_manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if manifest_uri is not None:
        manifest = manifest_uri
        with fsspec.open(manifest_uri, "rb") as handle:
            labels = pq.read_table(handle)
    else:
        manifest = out / "manifest.parquet"
        labels = write_realset_manifest(data_dir, str(manifest))
    classify_release(
        str(manifest),
        bundles,
        str(out / "catalog"),
        ClassifyConfig(chunk_size=chunk_size, overwrite=True),
        log=lambda line: None,
    )
    names, rows = query(str(out / "catalog"), f"SELECT {', '.join(CATALOG_COLUMNS)} FROM catalog")
    catalog = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])
    report = agreement_report(catalog, labels)
    text = "\n".join(report.lines(max_misses=10_000))
    (out / "agreement.txt").write_text(text + "\n")
    plot_confusion(report, str(out / "confusion.png"))
    pq.write_table(pa.Table.from_pylist(report.misses or [{}]), out / "misses.parquet")
    log("\n".join(report.lines()))
    log(f"written: {out / 'agreement.txt'}, {out / 'confusion.png'}")
    return report
