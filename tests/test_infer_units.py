"""Catalog pieces without Ray: bundle roles, schema, predictor, chunk store, check, query."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raysurvey.data.pipeline import column_numpy
from raysurvey.infer.catalog import (
    CatalogPlanError,
    catalog_schema,
    healpix29,
    modalities_of,
    plan_bundles,
    read_catalog_metadata,
)
from raysurvey.infer.check import CatalogCheckError, check_catalog
from raysurvey.infer.classify import ChunkAssembler
from raysurvey.infer.predict import ROW, Predictor
from raysurvey.infer.query import query
from raysurvey.infer.release import RELEASE_COLUMNS, ReleaseError, read_release
from raysurvey.infer.store import CatalogPlan, CatalogStore, CatalogStoreError
from raysurvey.labels import CLASS3, STELLAR8
from raysurvey.models import create_model
from raysurvey.models.bundle import load_bundle, read_manifest, save_bundle

TINY = dict(channels=(4,) * 8, hidden_dim=16, embed_dim=8, attention="se")


def tiny_bundle(path, labels, task="classify", seed=0, **norm) -> str:
    torch.manual_seed(seed)
    model = create_model("spec_cnn", num_classes=len(labels), **TINY)
    save_bundle(model, str(path), labels=labels, task=task, **norm)
    return str(path)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {
        "class3": tiny_bundle(root / "class3", list(CLASS3)),
        "stellar8": tiny_bundle(root / "stellar8", list(STELLAR8), seed=1),
        "z": tiny_bundle(
            root / "z",
            ["z"],
            task="redshift",
            seed=2,
            target_normalisation={"mean": [0.5], "std": [2.0]},
        ),
    }


def roles_of(*uris):
    return plan_bundles([(u, read_manifest(u)) for u in uris])


def test_roles_chain_class3_then_stellar8_and_regression(bundles):
    roles = roles_of(bundles["class3"], bundles["stellar8"], bundles["z"])
    assert [r.role for r in roles] == ["class", "subclass", "regression"]
    assert modalities_of(roles) == {"flux1d": {}}
    names = catalog_schema(roles).names
    assert names[:15] == [
        "survey", "obsid", "specobjid", "uri", "ra", "dec", "_healpix_29", "class",
        "subclass", "z", "zwarning", "snr_r", "good_fraction", "pred_class", "pred_subclass",
    ]  # fmt: skip
    probs = [n for n in names if n.startswith("prob_")]
    assert probs == ["prob_star", "prob_galaxy", "prob_qso", "prob_o", "prob_b", "prob_a",
                     "prob_f", "prob_g", "prob_k", "prob_m", "prob_carbon"]  # fmt: skip
    assert names[-15:] == [
        "confidence", "ood_score", "warning", "z_pred", "teff_pred", "logg_pred", "feh_pred",
        "z_pred_err", "template_class", "status", "error", "model_name", "model_version", "run_id",
        "created_at",
    ]  # fmt: skip


def test_roles_refuse_bad_chains(bundles, tmp_path):
    with pytest.raises(CatalogPlanError, match="no STAR label"):
        roles_of(bundles["stellar8"], bundles["class3"])
    with pytest.raises(CatalogPlanError, match="already filled"):
        roles_of(bundles["class3"], bundles["z"], bundles["z"])
    torch.manual_seed(0)
    mel = create_model("audio_cnn", feature="mel", num_classes=3)
    a = str(tmp_path / "a")
    save_bundle(mel, a, labels=list(CLASS3))
    manifest = read_manifest(a)
    other = dict(manifest, task="redshift", labels=["z"], modalities={"mel": {"variant": "paper"}})
    with pytest.raises(CatalogPlanError, match="computes mel with"):
        plan_bundles([(a, manifest), ("other", other)])


def test_healpix29_nests_into_lower_orders_and_marks_missing():
    import astropy.units as u
    from astropy_healpix import HEALPix

    ra = np.array([0.0, 10.0, 180.0, 359.9, 12.3, np.nan])
    dec = np.array([90.0, 0.0, -45.0, 10.0, -89.0, 3.0])
    pix = healpix29(ra, dec)
    assert pix.dtype == np.int64 and pix[-1] == -1
    for order in (0, 5, 12):
        lower = HEALPix(nside=2**order, order="nested").lonlat_to_healpix(
            ra[:-1] * u.deg, dec[:-1] * u.deg
        )
        np.testing.assert_array_equal(pix[:-1] >> (2 * (29 - order)), lower)
    assert pix[0] >> 58 in (0, 1, 2, 3)  # the north pole is in a polar base pixel
    assert pix[1] >> 58 == 4  # (10, 0) deg: the equatorial base pixel centred on RA 0


def decoded_table(n=6, bad=(2,)):
    """A modality-stage batch: manifest columns, flux1d, status (row ``bad`` failed)."""
    rng = np.random.default_rng(0)
    from raysurvey.data.pipeline import tensor_array

    status = ["error" if i in bad else "ok" for i in range(n)]
    return pa.table(
        {
            "uri": [f"file:///r/{i}.fits" for i in range(n)],
            "survey": ["lamost"] * n,
            "obsid": pa.array(range(100, 100 + n), pa.int64()),
            "specobjid": pa.nulls(n, pa.string()),
            "ra": [10.0 * i for i in range(n)],
            "dec": [1.0] * n,
            "class": ["STAR"] * n,
            "subclass": ["G2"] * n,
            "z": [0.0] * n,
            "zwarning": pa.nulls(n, pa.int64()),
            "snr_r": [20.0] * n,
            "good_fraction": pa.array([1.0] * n, pa.float32()),
            "status": status,
            "error": ["truncated: short file" if s == "error" else "" for s in status],
            "flux1d": tensor_array(rng.random((n, 3700), dtype=np.float32)),
            ROW: pa.array(range(n), pa.int64()),
        }
    )


def test_predictor_matches_the_models_and_nulls_errors(bundles):
    roles = roles_of(bundles["class3"], bundles["stellar8"], bundles["z"])
    table = decoded_table()
    out = Predictor(roles)(table).to_pydict()
    flux = torch.from_numpy(column_numpy(table, "flux1d")).unsqueeze(1)
    m3, m8, mz = (load_bundle(bundles[k]).model for k in ("class3", "stellar8", "z"))
    with torch.no_grad():
        p3 = torch.softmax(m3(flux), 1).numpy()
        p8 = torch.softmax(m8(flux), 1).numpy()
        z = mz(flux).numpy()[:, 0] * 2.0 + 0.5  # de-normalised with the bundle's mean, std
    for i in range(6):
        if i == 2:
            assert out["status"][i] == "error" and out["error"][i].startswith("truncated")
            assert out["pred_class"][i] is None and out["prob_star"][i] is None
            assert out["confidence"][i] is None and out["z_pred"][i] is None
            continue
        assert out["status"][i] == "ok" and out["error"][i] is None
        got = [out[f"prob_{c.lower()}"][i] for c in CLASS3]
        np.testing.assert_allclose(got, p3[i], rtol=1e-5)
        assert out["pred_class"][i] == CLASS3[int(p3[i].argmax())]
        assert out["confidence"][i] == pytest.approx(p3[i].max(), rel=1e-5)
        assert out["z_pred"][i] == pytest.approx(z[i], rel=1e-4)
        if out["pred_class"][i] == "STAR":
            assert out["pred_subclass"][i] == STELLAR8[int(p8[i].argmax())]
            assert sum(out[f"prob_{c.lower()}"][i] for c in STELLAR8) == pytest.approx(1, 1e-5)
        else:
            assert out["pred_subclass"][i] is None and out["prob_o"][i] is None
    assert out["_healpix_29"][0] == healpix29(np.array([0.0]), np.array([1.0]))[0]


def plan_for(n, chunk, bundles_list=(), fingerprint="f" * 64):
    return CatalogPlan(
        release="mem://release",
        fingerprint=fingerprint,
        n_rows=n,
        chunk_size=chunk,
        bundles=list(bundles_list),
        catalog_id="c1",
    )


def test_store_refuses_other_catalogs_and_foreign_directories(tmp_path):
    store = CatalogStore(str(tmp_path / "cat"))
    plan = store.open(plan_for(10, 4))
    assert plan.n_chunks == 3 and plan.chunk_rows(2) == (8, 10)
    assert store.open(plan_for(10, 4)).catalog_id == "c1"  # the same catalog continues
    with pytest.raises(CatalogStoreError, match="release differs"):
        store.open(plan_for(10, 4, fingerprint="0" * 64))
    with pytest.raises(CatalogStoreError, match="chunk-size"):
        store.open(plan_for(10, 5))
    store.open(plan_for(10, 5), overwrite=True)
    assert store.read_plan().chunk_size == 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("x")
    with pytest.raises(CatalogStoreError, match="not a raysurvey catalog"):
        CatalogStore(str(tmp_path / "other")).open(plan_for(10, 4), overwrite=True)
    assert (tmp_path / "other" / "data.csv").exists()


def release_for(n):
    from raysurvey.infer.release import Release

    table = decoded_table(n, bad=()).select(list(RELEASE_COLUMNS))
    return Release(uri="mem://release", table=table, listed=False)


def test_assembler_commits_whole_chunks_once_in_release_order(bundles, tmp_path):
    roles = roles_of(bundles["class3"])
    n, chunk = 10, 4
    release = release_for(n)
    store = CatalogStore(str(tmp_path / "cat"))
    plan = store.open(plan_for(n, chunk))
    schema = catalog_schema(roles, {"catalog_id": "c1"})
    provenance = {"model_name": "spec_cnn", "model_version": "v", "run_id": "r1"}
    logs = []
    assembler = ChunkAssembler(plan, [0, 1, 2], store, schema, provenance, logs.append)
    predicted = Predictor(roles)(decoded_table(n, bad=(7,)))
    for part in ([9, 3], [0, 5, 1, 3], [2, 8, 4, 9], [6, 7, 6]):  # repeats of 3, 9, 6
        assembler.add(predicted.take(part))
    assert assembler.duplicates == 3 and not assembler.missing()
    assert sorted(store.committed()) == [0, 1, 2]
    first = pq.read_table(tmp_path / "cat" / "part-000001.parquet")
    assert first.column("obsid").to_pylist() == [104, 105, 106, 107]
    assert first.schema.names == schema.names
    assert read_catalog_metadata(first.schema) == {"catalog_id": "c1"}
    assert first.column("status").to_pylist() == ["ok", "ok", "ok", "error"]
    report = check_catalog(store, release, plan)
    assert report.rows == 10 and report.by_status == {"ok": 9, "error": 1}
    assert report.errors_by_reason == {"truncated": 1}
    names, rows = query(str(tmp_path / "cat"), "SELECT status, count(*) FROM catalog GROUP BY 1")
    assert dict(rows) == {"ok": 9, "error": 1} and names[0] == "status"


def test_check_catches_missing_and_misplaced_rows(bundles, tmp_path):
    roles = roles_of(bundles["class3"])
    release = release_for(8)
    store = CatalogStore(str(tmp_path / "cat"))
    plan = store.open(plan_for(8, 4))
    schema = catalog_schema(roles)
    provenance = {"model_name": "m", "model_version": "v", "run_id": "r"}
    assembler = ChunkAssembler(plan, [0, 1], store, schema, provenance, lambda _: None)
    assembler.add(Predictor(roles)(decoded_table(8, bad=())).take([0, 1, 2, 3]))
    with pytest.raises(CatalogCheckError, match="chunk 1 .* not committed"):
        check_catalog(store, release, plan)
    swapped = pq.read_table(tmp_path / "cat" / "part-000000.parquet").take([1, 0, 2, 3])
    pq.write_table(swapped, tmp_path / "cat" / "part-000000.parquet")
    with pytest.raises(CatalogCheckError, match="chunk 0: 2 rows whose uri"):
        check_catalog(store, release, plan)


def test_release_from_manifest_or_listing(tmp_path):
    with pytest.raises(ReleaseError, match="manifest not found"):
        read_release(str(tmp_path / "missing.parquet"))
    with pytest.raises(ReleaseError, match="no FITS files"):
        read_release(str(tmp_path))
    (tmp_path / "b").mkdir()
    for name in ("b/2.fits.gz", "1.fits", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    listed = read_release(str(tmp_path))
    assert listed.listed and listed.uris == [
        str(tmp_path / "1.fits"),
        str(tmp_path / "b/2.fits.gz"),
    ]
    assert listed.table.column_names == list(RELEASE_COLUMNS)
    pq.write_table(
        pa.table({"uri": ["x.fits"], "survey": ["sdss"], "snr_r": [3.0]}), tmp_path / "m.parquet"
    )
    manifest = read_release(str(tmp_path / "m.parquet"))
    assert not manifest.listed and manifest.table.column("obsid").null_count == 1


def test_listed_release_rows_get_ids_and_labels_from_headers(tmp_path):
    from raysurvey.data.decode import DecodeOptions
    from raysurvey.data.pipeline import decode_table
    from raysurvey.infer.release import HEADER_KEYS
    from raysurvey.io import read_spectrum
    from raysurvey.io.examples import write_examples

    write_examples(str(tmp_path), gzipped=False)
    (tmp_path / "broken.fits").write_bytes(b"not a fits file")
    release = read_release(str(tmp_path))
    table = decode_table(release.table, DecodeOptions(header_keys=HEADER_KEYS))
    rows = table.to_pylist()
    assert [r["uri"] for r in rows] == release.uris
    for row in rows:
        if row["uri"].endswith("broken.fits"):
            assert row["status"] == "error" and row["survey"] is None
            continue
        meta = read_spectrum(row["uri"]).meta
        assert row["status"] == "ok" and row["survey"] == meta["survey"]
        for key in ("obsid", "specobjid", "ra", "dec", "class", "subclass", "z"):
            assert row[key] == meta[key], (row["uri"], key)
    assert sum(r["obsid"] is not None or r["specobjid"] is not None for r in rows) >= 3
    # a manifest value wins over the header
    first = release.table.slice(0, 1).set_column(5, "dec", pa.array([-1.5]))
    assert decode_table(first, DecodeOptions(header_keys=("dec",))).column("dec")[0].as_py() == -1.5


def test_job_names_bad_input_in_one_line(bundles, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "jobs" / "classify_release.py"
    spec = importlib.util.spec_from_file_location("classify_job", path)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    missing = str(tmp_path / "nope" / "manifest.parquet")
    out = str(tmp_path / "cat")
    assert job.main(["--release", missing, "--bundle", bundles["class3"], "--output", out]) == 2
    assert f"{missing}: manifest not found" in capsys.readouterr().err
    pq.write_table(pa.table({"uri": ["a.fits"], "survey": ["sdss"]}), tmp_path / "m.parquet")
    argv = ["--release", str(tmp_path / "m.parquet"), "--output", out]
    assert job.main([*argv, "--bundle", str(tmp_path / "no-bundle")]) == 2
    assert "not a model bundle" in capsys.readouterr().err
    assert job.main([*argv, "--bundle", bundles["stellar8"], "--bundle", bundles["class3"]]) == 2
    assert "no STAR label" in capsys.readouterr().err
