"""Publishing catalogs as HATS (``raysurvey publish-hats``) and reading them with LSDB.

The expected answers come from the flat catalog by brute force (every row, angular
distances, HEALPix pixels from astropy-healpix rather than from hats), never from the
code under test.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysurvey.hats_publish import (
    NO_COORDINATES,
    PROVENANCE,
    PublishConfig,
    PublishError,
    coordinates_mask,
    hats_partition_files,
    hats_path,
    publish_hats,
    read_provenance,
    write_example_catalog,
)
from raysurvey.infer.catalog import read_catalog_metadata
from raysurvey.infer.query import query

N, CHUNK, MISSING = 3000, 1000, 12
MARGIN_ARCSEC = 120.0
#: A sky patch, so partitions are small and many rows sit near partition edges.
RA_RANGE, DEC_RANGE = (150.0, 162.0), (-2.0, 10.0)
PARTITION = re.compile(r"Norder=(\d+)/Dir=\d+/Npix=(\d+)\.parquet$")


def row_digest(table: pa.Table) -> list[str]:
    """Sorted per-row SHA-256 of the ids and every prediction column."""
    names = ["survey", "obsid", "specobjid", "uri", "pred_class", "confidence", "status"]
    names += [n for n in table.column_names if n.startswith("prob_")]
    columns = [table.column(n).to_pylist() for n in names]
    return sorted(
        hashlib.sha256(repr(values).encode()).hexdigest() for values in zip(*columns, strict=True)
    )


def angular_distance_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance (haversine), degrees."""
    ra1, dec1, ra2, dec2 = (
        np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2)
    )
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def nested_pixel(order: int, ra, dec) -> np.ndarray:
    """NESTED HEALPix pixel at ``order`` by astropy-healpix (not by hats)."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    grid = HEALPix(nside=2**order, order="nested")
    return grid.lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)


def partitions(directory: Path) -> dict[tuple[int, int], pa.Table]:
    """(order, pixel) -> rows of every partition file under a HATS catalog directory."""
    out = {}
    for path in sorted(directory.glob("dataset/Norder=*/Dir=*/Npix=*.parquet")):
        order, pixel = map(int, PARTITION.search(path.as_posix()).groups())
        out[(order, pixel)] = pq.read_table(path)
    return out


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> tuple[str, pa.Table]:
    """A committed 3000-row catalog (12 rows without coordinates) + an uncommitted chunk."""
    uri = str(tmp_path_factory.mktemp("hats-flat") / "cat")
    rows = write_example_catalog(
        uri,
        N,
        chunk_size=CHUNK,
        seed=3,
        no_coordinates=MISSING,
        uncommitted_chunks=1,
        ra_range=RA_RANGE,
        dec_range=DEC_RANGE,
    )
    return uri, rows


@pytest.fixture(scope="module")
def published(flat, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("hats-out") / "example_hats")
    result = publish_hats(
        flat[0],
        out,
        PublishConfig(margin_arcsec=MARGIN_ARCSEC, pixel_threshold=250, highest_order=7),
    )
    return out, result


def test_hats_copy_has_exactly_the_committed_rows(flat, published) -> None:
    uri, rows = flat
    out, result = published
    placed = rows.filter(coordinates_mask(rows))
    main = Path(result.catalog_path)
    hats_rows = pa.concat_tables(partitions(main).values())
    assert result.rows_in == N and result.rows_no_coordinates == MISSING
    assert hats_rows.num_rows == result.rows_published == N - MISSING == placed.num_rows
    assert row_digest(hats_rows) == row_digest(placed)
    # every column carried through, in order, with the catalog's metadata on each file
    assert hats_rows.column_names == rows.column_names
    some_file = next(main.glob("dataset/Norder=*/Dir=*/Npix=*.parquet"))
    assert read_catalog_metadata(pq.read_schema(some_file)) == read_catalog_metadata(rows.schema)
    # the uncommitted chunk (rows N.. of the plan) is nowhere
    assert not any(u.endswith(f"{N:08d}.fits") for u in hats_rows.column("uri").to_pylist())
    # rows without coordinates: all of them, in the documented file, counted everywhere
    missing = pq.read_table(Path(out) / NO_COORDINATES)
    unplaced = rows.filter(~coordinates_mask(rows))
    assert sorted(missing.column("uri").to_pylist()) == sorted(unplaced.column("uri").to_pylist())
    assert missing.num_rows == MISSING
    provenance = read_provenance(out)
    assert provenance["counts"]["rows_no_coordinates"] == MISSING
    assert provenance["catalog_metadata"]["catalog_id"] == "example-catalog"
    assert len(provenance["committed_files"]) == N // CHUNK
    properties = (main / "hats.properties").read_text()
    assert f"hats_nrows={N - MISSING}" in properties
    assert "raysurvey_bundles=spec_cnn@example0" in properties
    assert f"raysurvey_rows_no_coordinates={MISSING}" in properties


def test_every_row_is_in_the_partition_whose_pixel_holds_it(flat, published) -> None:
    _, rows = flat
    _, result = published
    parts = partitions(Path(result.catalog_path))
    assert len(parts) > 4  # the patch really was split
    orders = {order for order, _ in parts}
    for (order, pixel), table in parts.items():
        ra, dec = table.column("ra").to_numpy(), table.column("dec").to_numpy()
        assert (nested_pixel(order, ra, dec) == pixel).all(), (order, pixel)
        assert (table.column("_healpix_29").to_numpy() == nested_pixel(29, ra, dec)).all()
    assert result.partitions == len(parts) and max(orders) <= 7


@pytest.mark.parametrize(
    ("ra", "dec", "radius_arcsec"),
    [(156.0, 4.0, 3 * 3600.0), (151.3, 8.7, 1800.0), (158.9, -0.4, 1200.0), (40.0, 40.0, 3600.0)],
)
def test_lsdb_cone_search_equals_brute_force(flat, published, ra, dec, radius_arcsec) -> None:
    import lsdb

    _, rows = flat
    out, _ = published
    placed = rows.filter(coordinates_mask(rows))
    d = angular_distance_deg(placed.column("ra"), placed.column("dec"), ra, dec)
    assert not np.any(np.abs(d * 3600 - radius_arcsec) < 1e-3)  # no row on the edge
    expected = sorted(np.array(placed.column("uri").to_pylist())[d * 3600 < radius_arcsec])
    found = lsdb.read_hats(out).cone_search(ra=ra, dec=dec, radius_arcsec=radius_arcsec)
    got = sorted(found.compute()["uri"].tolist())
    assert got == expected
    assert bool(expected) == (ra > 100)  # inside / outside the patch


def test_margin_cache_holds_the_rows_near_each_partition(flat, published) -> None:
    """Each partition's margin = the rows outside it within the HATS margin pixels
    (the definition, brute force over all rows), and contains every row within
    ``MARGIN_ARCSEC`` of the partition (distance to its boundary, astropy-healpix)."""
    import astropy.units as u
    import hats.pixel_math.healpix_shim as hp
    from astropy_healpix import HEALPix
    from hats.pixel_math import get_margin

    _, rows = flat
    out, result = published
    placed = rows.filter(coordinates_mask(rows))
    ra, dec = placed.column("ra").to_numpy(), placed.column("dec").to_numpy()
    uris = np.array(placed.column("uri").to_pylist())
    margins = partitions(Path(result.margin_path))
    margin_order = int(hp.margin2order(MARGIN_ARCSEC / 60.0))
    at_margin_order = nested_pixel(margin_order, ra, dec)
    assert result.margin_rows == sum(t.num_rows for t in margins.values()) > 0
    near_total = 0
    for order, pixel in partitions(Path(result.catalog_path)):
        inside = nested_pixel(order, ra, dec) == pixel
        ring = np.isin(at_margin_order, get_margin(order, pixel, margin_order - order))
        expected = set(uris[ring & ~inside])
        got = set(margins.get((order, pixel), pa.table({"uri": []})).column("uri").to_pylist())
        assert got == expected, (order, pixel)
        # completeness by geometry: distance to the partition's boundary, densely sampled
        # (the true distance is never larger than the sampled one). A row within the
        # margin lies in one of the 8 neighbours of the pixel at its order (pixels at
        # order <= 10 are wider than the margin), so only those rows are measured.
        grid = HEALPix(nside=2**order, order="nested")
        lon, lat = grid.boundaries_lonlat([pixel], step=400)
        bra, bdec = lon.to_value(u.deg).ravel(), lat.to_value(u.deg).ravel()
        neighbours = grid.neighbours(pixel)
        outside = np.flatnonzero(np.isin(nested_pixel(order, ra, dec), neighbours[neighbours >= 0]))
        dist = (
            angular_distance_deg(
                ra[outside, None], dec[outside, None], bra[None, :], bdec[None, :]
            ).min(axis=1)
            * 3600
        )
        near = set(uris[outside[dist < MARGIN_ARCSEC]])
        near_total += len(near)
        assert near <= got, (order, pixel, sorted(near - got)[:3])
    assert near_total > 10


def test_raysurvey_query_reads_a_hats_directory(flat, published) -> None:
    from raysurvey.cli import main

    uri, _ = flat
    out, result = published
    sql = (
        "SELECT pred_class, count(*) AS n, round(sum(prob_star), 3) FROM catalog {} "
        "GROUP BY 1 ORDER BY 1"
    )
    valid = "WHERE isfinite(ra) AND isfinite(dec) AND abs(dec) <= 90"
    assert query(out, sql.format("")) == query(uri, sql.format(valid))
    columns = [row[0] for row in query(out, "DESCRIBE catalog")[1]]
    assert columns == pq.read_schema(next(Path(result.catalog_path).rglob("Npix=*.parquet"))).names
    assert len(hats_partition_files(out)) == result.partitions
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["query", out, "SELECT count(*) AS n FROM catalog"]) == 0
    assert str(N - MISSING) in printed.getvalue()


def test_output_that_is_not_a_publication_is_refused(flat, tmp_path) -> None:
    other = tmp_path / "not_hats"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(PublishError, match="not empty"):
            publish_hats(flat[0], str(other), PublishConfig(overwrite=overwrite))
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(PublishError, match="no committed catalog chunks"):
        publish_hats(str(tmp_path / "nothing"), str(tmp_path / "out"))
    with pytest.raises(PublishError, match="may hold only"):
        publish_hats(flat[0], str(tmp_path / "bad name"))


def test_cli_publishes_to_s3_and_refuses_to_overwrite_silently(s3_bucket, tmp_path) -> None:
    """``raysurvey publish-hats`` from an s3:// catalog to s3:// (moto), read back by
    LSDB and ``raysurvey query``; a second run needs --overwrite."""
    import lsdb
    import s3fs

    from raysurvey.cli import main

    catalog, out = f"{s3_bucket}/cat", f"{s3_bucket}/pub/small_hats"
    rows = write_example_catalog(catalog, 200, chunk_size=200, seed=9, no_coordinates=3)
    args = ["publish-hats", "--catalog", catalog, "--output", out, "--margin-arcsec", "3600"]
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(args) == 0
    assert "published 197 rows" in printed.getvalue()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    assert fs.exists(f"{out}/{NO_COORDINATES}") and fs.exists(f"{out}/{PROVENANCE}")
    opened = lsdb.read_hats(hats_path(out))  # a UPath: s3:// strings would be anonymous
    assert opened.margin is not None
    assert sorted(opened.compute()["uri"]) == sorted(
        rows.filter(coordinates_mask(rows)).column("uri").to_pylist()
    )
    assert query(out, "SELECT count(*) FROM catalog")[1] == [(197,)]
    assert json.loads(fs.cat_file(f"{out}/{PROVENANCE}"))["counts"]["rows_published"] == 197
    with redirect_stdout(io.StringIO()):
        assert main(args) == 2  # exists: refused
        assert main([*args, "--overwrite", "--margin-arcsec", "0"]) == 0
    assert not fs.exists(f"{out}/small_hats_1deg")  # replaced by a publication without margin
    assert query(out, "SELECT count(*) FROM catalog")[1] == [(197,)]


@pytest.mark.slow
def test_classified_mixed_release_published_and_cross_matched(
    tmp_path, templates_dir, ray_cluster
) -> None:
    """A mixed synthetic release in which some objects are observed by both surveys,
    classified, published: the HATS copy has the catalog's rows, and LSDB's LAMOST x
    SDSS cross-match finds exactly the pairs the release planted."""
    import lsdb
    import torch

    from raysurvey.infer import ClassifyConfig, classify_release
    from raysurvey.labels import CLASS3
    from raysurvey.models import create_model
    from raysurvey.models.bundle import save_bundle
    from raysurvey.synth import SynthConfig, write_release
    from raysurvey.synth.release import BOTH_SURVEYS, plan, repeat_of

    config = SynthConfig(
        n=80, out=str(tmp_path / "rel"), templates=templates_dir, seed=4, extra={BOTH_SURVEYS: 0.5}
    )
    manifest = write_release(config, chunk_size=40, progress=False)
    plans = [plan(config, i, np.random.default_rng([config.seed, i])) for i in range(config.n)]
    planted = {
        (i, first)
        for i in range(config.n)
        if (first := repeat_of(config, i)) is not None and plans[first].survey != plans[i].survey
    }
    assert len(planted) >= 5
    torch.manual_seed(0)
    model = create_model("spec_cnn", num_classes=3, channels=(4,) * 8, hidden_dim=16)
    bundle = str(tmp_path / "class3")
    save_bundle(model, bundle, labels=list(CLASS3))
    catalog = str(tmp_path / "cat")
    classify_release(manifest, [bundle], catalog, ClassifyConfig(chunk_size=40))
    out = str(tmp_path / "mixed_hats")
    result = publish_hats(catalog, out, PublishConfig(margin_arcsec=10.0, highest_order=6))

    flat = pa.concat_tables(pq.read_table(f) for f in sorted(Path(catalog).glob("part-*.parquet")))
    assert result.rows_published == flat.num_rows == config.n
    opened = lsdb.read_hats(out)
    assert row_digest(pa.Table.from_pandas(opened.compute(), preserve_index=False)) == row_digest(
        flat
    )
    lamost = opened.query("survey == 'lamost'")
    sdss = opened.query("survey == 'sdss'")
    matched = lamost.crossmatch(
        sdss, radius_arcsec=2.0, n_neighbors=1, suffixes=("_lamost", "_sdss")
    ).compute()
    index = {u: i for i, u in enumerate(manifest_uris(manifest))}
    found = {
        tuple(sorted((index[a], index[b]), reverse=True))
        for a, b in zip(matched["uri_lamost"], matched["uri_sdss"], strict=True)
    }
    # every planted pair found is (repeat, first); each LAMOST member of a planted pair
    # finds its one nearest SDSS partner (n_neighbors=1), and nothing else is matched
    assert found and found <= planted
    lamost_of = {i if plans[i].survey == "lamost" else j for i, j in planted}
    assert {i if plans[i].survey == "lamost" else j for i, j in found} == lamost_of
    assert len(found) == len(lamost_of) == len(matched)
    assert (matched["_dist_arcsec"] < 2.0).all()


def manifest_uris(manifest: str) -> list[str]:
    return pq.read_table(manifest, columns=["uri"]).column("uri").to_pylist()
