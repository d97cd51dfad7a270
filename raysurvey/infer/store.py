"""Exactly-once catalog storage: a plan, deterministic chunk files, commit markers.

Layout under the output URI (local directory or s3:// prefix)::

    _catalog.json                   the plan: release fingerprint, chunking, bundles
    part-000000.parquet ...         chunk k holds release rows [k * size, (k + 1) * size)
    _committed/part-000000.json     written after its part: row count, checksum

Why this shape: S3 has no atomic rename, but a single PUT is atomic and a later PUT
to the same key replaces it. A chunk's file name depends only on the chunk, so a
retried chunk overwrites its own earlier attempt instead of adding a second copy;
the marker is written only after the file is complete, and readers use only files
with a marker. A rerun therefore skips committed chunks and redoes the others, and
a kill at any moment leaves at most an unmarked file that the rerun replaces.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

PLAN = "_catalog.json"
COMMITTED = "_committed"
#: Test hook: the process exits hard after writing this chunk's file, before its
#: marker (the worst moment to be killed). Used by the exactly-once tests only.
DIE_BEFORE_COMMIT_ENV = "RAYSURVEY_TEST_DIE_BEFORE_COMMIT"
#: Test hook: after this many commits the writing process stops where it is (sleeps),
#: so a test can SIGKILL it at a known point instead of racing a fast job.
PAUSE_AFTER_COMMITS_ENV = "RAYSURVEY_TEST_PAUSE_AFTER_COMMITS"


class CatalogStoreError(RuntimeError):
    """An output that cannot be used as asked (the message names it and says why)."""


@dataclass(frozen=True)
class CatalogPlan:
    """How a release is cut into chunks and what classifies it; fixed for a catalog."""

    release: str
    fingerprint: str
    n_rows: int
    chunk_size: int
    bundles: list[dict]
    catalog_id: str
    created_at: str = ""
    #: The template redshift step (``RedshiftPlan.summary()``); None when z_pred is not fitted.
    redshift: dict | None = None

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_size) if self.n_rows else 0

    def chunk_rows(self, chunk: int) -> tuple[int, int]:
        """Release rows [start, stop) of ``chunk``."""
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.n_rows)

    def same_catalog(self, other: CatalogPlan) -> list[str]:
        """What differs between two plans for the same output (empty when compatible)."""
        problems = []
        if other.fingerprint != self.fingerprint or other.n_rows != self.n_rows:
            problems.append(
                f"the release differs ({other.n_rows} rows, fingerprint "
                f"{other.fingerprint[:12]} vs {self.n_rows} rows, {self.fingerprint[:12]})"
            )
        if other.chunk_size != self.chunk_size:
            problems.append(f"--chunk-size {other.chunk_size} vs {self.chunk_size}")
        ours = [(b["uri"], b["version"]) for b in self.bundles]
        theirs = [(b["uri"], b["version"]) for b in other.bundles]
        if ours != theirs:
            problems.append(f"the bundles differ ({theirs} vs {ours})")
        ours_z = (self.redshift or {}).get("fingerprint")
        theirs_z = (other.redshift or {}).get("fingerprint")
        if ours_z != theirs_z:
            problems.append(
                "the redshift templates differ "
                f"({(other.redshift or {}).get('templates', 'none')} vs "
                f"{(self.redshift or {}).get('templates', 'none')})"
            )
        return problems


def release_fingerprint(uris: list[str]) -> str:
    """SHA-256 over the ordered URIs: the identity of a release's row order."""
    digest = hashlib.sha256()
    for uri in uris:
        digest.update(uri.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def part_name(chunk: int) -> str:
    return f"part-{chunk:06d}.parquet"


class CatalogStore:
    """Reads and writes one catalog's plan, chunk files and markers at ``uri``."""

    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.uri)
        self.path = self.path.rstrip("/")
        self.commits_here = 0  # chunks this process committed (for the pause hook)

    def _join(self, *names: str) -> str:
        return "/".join([self.path, *names])

    def uri_of(self, name: str) -> str:
        """The full URI of a file in the catalog (as readers outside fsspec need it)."""
        return f"{self.uri}/{name}"

    # -- plan ---------------------------------------------------------------------------

    def read_plan(self) -> CatalogPlan | None:
        try:
            with self.fs.open(self._join(PLAN), "r") as f:
                return CatalogPlan(**json.load(f))
        except FileNotFoundError:
            return None

    def open(self, plan: CatalogPlan, overwrite: bool = False) -> CatalogPlan:
        """Start or continue the catalog described by ``plan``; returns the plan in force.

        An output that holds another catalog (another release, chunking or bundle) is
        an error unless ``overwrite``, which deletes it first; an output with files but
        no plan is not ours and is never deleted.
        """
        existing = self.read_plan()
        if existing is not None and overwrite:
            self.fs.rm(self.path, recursive=True)
            existing = None
        elif existing is None and self.fs.exists(self.path) and self.fs.ls(self.path):
            raise CatalogStoreError(
                f"{self.uri}: not empty and not a raysurvey catalog (no {PLAN}); "
                "choose another --output"
            )
        if existing is not None:
            problems = existing.same_catalog(plan)
            if problems:
                raise CatalogStoreError(
                    f"{self.uri} holds another catalog: {'; '.join(problems)}. "
                    "Use a new --output, or --overwrite to replace it"
                )
            return existing
        self.fs.makedirs(self.path, exist_ok=True)
        with self.fs.open(self._join(PLAN), "w") as f:
            json.dump(asdict(plan), f, indent=2)
        return plan

    # -- chunks ---------------------------------------------------------------------------

    def committed(self) -> dict[int, dict]:
        """Markers of the committed chunks, by chunk number."""
        try:
            names = self.fs.ls(self._join(COMMITTED), detail=False)
        except FileNotFoundError:
            return {}
        markers = {}
        for name in names:
            if not name.endswith(".json"):
                continue
            with self.fs.open(name, "r") as f:
                marker = json.load(f)
            markers[int(marker["chunk"])] = marker
        return markers

    def write_chunk(self, chunk: int, table: pa.Table, run_id: str) -> dict:
        """Write chunk ``chunk`` (overwriting an uncommitted attempt), then commit it."""
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        data = buffer.getvalue()
        name = part_name(chunk)
        with self.fs.open(self._join(name), "wb") as f:
            f.write(data)
        if os.environ.get(DIE_BEFORE_COMMIT_ENV) == str(chunk):
            os._exit(137)
        marker = {
            "chunk": chunk,
            "file": name,
            "rows": table.num_rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "run_id": run_id,
            "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        self.fs.makedirs(self._join(COMMITTED), exist_ok=True)
        with self.fs.open(self._join(COMMITTED, name.replace(".parquet", ".json")), "w") as f:
            json.dump(marker, f)
        self.commits_here += 1
        if os.environ.get(PAUSE_AFTER_COMMITS_ENV) == str(self.commits_here):
            time.sleep(3600)
        return marker

    def committed_files(self) -> list[str]:
        """URIs of the committed chunk files, in chunk order (what readers read)."""
        markers = self.committed()
        return [self.uri_of(markers[k]["file"]) for k in sorted(markers)]

    def read_chunk(self, chunk: int, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open(self._join(part_name(chunk)), "rb") as f:
            return pq.read_table(f, columns=columns)
