"""The final check: the committed catalog holds exactly one row per release row.

Chunk by chunk: a marker, a file whose row count matches the marker and the plan,
and the release's URIs (and survey ids, where the release has them) in the release's
order. Anything else (a missing chunk, a short or long file, a row out of place) is
a ``CatalogCheckError`` that says which chunk and what.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow.compute as pc

from raysurvey.infer.release import Release
from raysurvey.infer.store import CatalogPlan, CatalogStore

ID_COLUMNS = ("uri", "obsid", "specobjid")


class CatalogCheckError(RuntimeError):
    """The catalog and the release disagree (the message lists every problem)."""


@dataclass
class CheckReport:
    """Rows per status and per predicted class of a checked catalog."""

    rows: int
    chunks: int
    by_status: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)
    by_subclass: dict[str, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "-"

        out = [
            f"catalog check: {self.rows:,} rows in {self.chunks} chunks, one per release row",
            f"  status:     {fmt(self.by_status)}",
            f"  pred_class: {fmt(self.by_class)}",
        ]
        if self.by_subclass:
            out.append(f"  pred_subclass (stars): {fmt(self.by_subclass)}")
        if self.errors_by_reason:
            out.append(f"  errors by reason: {fmt(self.errors_by_reason)}")
        return out


def check_catalog(store: CatalogStore, release: Release, plan: CatalogPlan) -> CheckReport:
    """Compare the committed catalog with ``release``; raise on any difference."""
    markers = store.committed()
    problems: list[str] = []
    report = CheckReport(rows=0, chunks=plan.n_chunks)
    status, classes, subclasses, reasons = Counter(), Counter(), Counter(), Counter()
    for chunk in range(plan.n_chunks):
        start, stop = plan.chunk_rows(chunk)
        marker = markers.get(chunk)
        if marker is None:
            problems.append(f"chunk {chunk} (rows {start}-{stop - 1}) is not committed")
            continue
        columns = [*ID_COLUMNS, "status", "error", "pred_class", "pred_subclass"]
        try:
            table = store.read_chunk(chunk, columns=columns)
        except (FileNotFoundError, OSError) as exc:
            problems.append(f"chunk {chunk}: committed but unreadable: {exc}")
            continue
        if table.num_rows != stop - start or marker["rows"] != stop - start:
            problems.append(
                f"chunk {chunk}: {table.num_rows} rows in the file, {marker['rows']} in its "
                f"marker, {stop - start} in the release"
            )
            continue
        expected = release.table.slice(start, stop - start)
        for name in ID_COLUMNS:
            want = expected.column(name)
            known = pc.is_valid(want)
            got = table.column(name).cast(want.type)
            same = pc.equal(pc.filter(got, known), pc.filter(want, known))
            if pc.all(same).as_py() is False:
                bad = pc.sum(pc.invert(same)).as_py()
                problems.append(f"chunk {chunk}: {bad} rows whose {name} is not the release's")
        report.rows += table.num_rows
        status.update(table.column("status").to_pylist())
        classes.update(c for c in table.column("pred_class").to_pylist() if c is not None)
        subclasses.update(c for c in table.column("pred_subclass").to_pylist() if c is not None)
        reasons.update(
            e.split(":", 1)[0] for e in table.column("error").to_pylist() if e is not None
        )
    extra = sorted(set(markers) - set(range(plan.n_chunks)))
    if extra:
        problems.append(f"markers for chunks outside the plan: {extra}")
    if problems:
        raise CatalogCheckError(
            f"{store.uri} does not match the release {plan.release}:\n  " + "\n  ".join(problems)
        )
    report.by_status = dict(status.most_common())
    report.by_class = dict(classes.most_common())
    report.by_subclass = dict(subclasses.most_common())
    report.errors_by_reason = dict(reasons.most_common())
    return report
