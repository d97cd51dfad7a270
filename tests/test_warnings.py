"""The ``warning`` bits on constructed spectra, through the catalog's Predictor (no Ray).

A tiny spec_cnn learns three made-up spectral shapes in a few seconds; its bundle is
calibrated on held-out shapes. Then a clean spectrum, a flat line, an all-masked one,
pure noise, a sine wave, an unreadable row and a chain whose stellar head disagrees
go through the Predictor, and each must get the bits it deserves.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raysurvey import warning_bits as bits
from raysurvey.calibration import fit_calibration, logits_and_features, softmax
from raysurvey.data.pipeline import tensor_array
from raysurvey.infer import CatalogStoreError, ClassifyConfig, classify_release
from raysurvey.infer.catalog import catalog_schema, plan_bundles
from raysurvey.infer.predict import ROW, Predictor
from raysurvey.infer.store import CatalogPlan, CatalogStore, release_fingerprint
from raysurvey.io.spectrum import Spectrum
from raysurvey.modalities.flux1d import flux1d
from raysurvey.models import create_model
from raysurvey.models.bundle import load_bundle, read_manifest, save_bundle, save_calibration
from raysurvey.spectra.grid import grid_loglam, to_grid
from raysurvey.warning_report import warning_report

#: Every 4th pixel of flux1d (925 of 3700) keeps the test fast; the Predictor takes the
#: flux1d column as given.
STEP = 4
TINY = dict(channels=(6,) * 8, hidden_dim=32, embed_dim=16, attention="none", input_length=925)
WAVE = 10 ** grid_loglam()
X = np.linspace(0, 1, len(WAVE))


def shape(kind: int, rng) -> np.ndarray:
    """Class 0 ("STAR"): falling continuum with two absorption lines; 1 ("GALAXY"):
    rising continuum, two other lines; 2 ("QSO"): falling steeply, with broad emission lines."""

    def line(at, depth, width=0.006):
        return depth * np.exp(-0.5 * ((X - at) / width) ** 2)

    jitter = rng.normal(0, 0.01)
    if kind == 0:
        flux = 1.2 - 0.6 * X - line(0.2 + jitter, 0.4) - line(0.55 + jitter, 0.3)
    elif kind == 1:
        flux = 0.5 + 0.6 * X - line(0.35 + jitter, 0.3) - line(0.75 + jitter, 0.35)
    else:
        flux = 1.4 - 1.0 * X + line(0.3 + jitter, 0.9, 0.02) + line(0.65 + jitter, 0.7, 0.02)
    return flux * rng.uniform(0.5, 2.0)


def grid_row(flux, snr=40.0, masked=None) -> dict:
    """What the decode stage makes of a spectrum: grid flux, good_fraction, snr."""
    flux = np.asarray(flux, dtype=np.float64)
    level = np.median(np.abs(flux)) or 1.0
    ivar = np.full(len(flux), (snr / level) ** 2)
    mask = np.zeros(len(flux), bool) if masked is None else masked
    grid = to_grid(Spectrum(WAVE, flux.astype(np.float32), ivar.astype(np.float32), mask))
    return {"flux": grid.flux, "good_fraction": grid.good_fraction, "snr": grid.snr}


def noisy(kind, rng, snr=40.0) -> np.ndarray:
    flux = shape(kind, rng)
    return flux + rng.normal(0, np.median(flux) / snr, len(flux))


def inputs(rows: list[dict]) -> np.ndarray:
    return flux1d({"flux": np.stack([r["flux"] for r in rows])})[:, ::STEP].copy()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """(class bundle, stellar bundle, forced-STAR class bundle) URIs, all calibrated."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, above all on a busy host
    kinds = np.arange(600) % 3
    # on the grid already: to_grid would change nothing but the time taken
    flux = np.stack([noisy(k, rng, snr=rng.uniform(15, 60)) for k in kinds])
    x = torch.from_numpy(flux1d({"flux": flux})[:, ::STEP].copy()).unsqueeze(1)
    y = torch.from_numpy(kinds)
    model = create_model("spec_cnn", num_classes=3, **TINY)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    train, val, fit_rows = slice(0, 300), slice(300, 450), slice(450, 600)
    try:
        for _ in range(150):
            batch = torch.from_numpy(rng.integers(0, 300, 32))
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[train][batch]), y[train][batch]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    logits, feats = logits_and_features(model, {"flux1d": x})
    assert (logits[val].argmax(1) == kinds[val]).mean() > 0.95  # it learned the shapes
    root = tmp_path_factory.mktemp("warn")
    uris = {}
    cal, tensors = fit_calibration(
        logits[val], kinds[val], feats[val], feats[fit_rows], kinds[fit_rows], 3
    )
    uris["class3"] = str(root / "class3")
    save_bundle(model, uris["class3"], labels=["STAR", "GALAXY", "QSO"])
    save_calibration(uris["class3"], cal, tensors)
    # the "stellar" head: same network, but its OOD model knows only class-0 spectra
    stars = kinds == 0
    star_val, star_fit = stars & (np.arange(600) >= 300), stars & (np.arange(600) >= 450)
    sub_cal, sub_tensors = fit_calibration(
        logits[star_val], np.zeros(star_val.sum(), int), feats[star_val],
        feats[star_fit], np.zeros(star_fit.sum(), int), 3, ood_rate=0.01,
    )  # fmt: skip
    uris["stellar"] = str(root / "stellar")
    save_bundle(model, uris["stellar"], labels=["A", "F", "G"])
    save_calibration(uris["stellar"], sub_cal, sub_tensors)
    # a class bundle that calls everything STAR (a huge STAR bias in its scaling)
    forced = dict(cal, probabilities={"method": "vector", "scale": [1, 1, 1], "bias": [50, 0, 0]})
    uris["forced"] = str(root / "forced")
    save_bundle(model, uris["forced"], labels=["STAR", "GALAXY", "QSO"])
    save_calibration(uris["forced"], forced, tensors)
    return uris


def table_of(rows: list[dict], status=None, snr_r=None) -> pa.Table:
    n = len(rows)
    status = status or ["ok"] * n
    return pa.table(
        {
            "uri": [f"file:///c/{i}.fits" for i in range(n)],
            "survey": ["lamost"] * n,
            "obsid": pa.array(range(n), pa.int64()),
            "specobjid": pa.nulls(n, pa.string()),
            "ra": [1.0] * n,
            "dec": [2.0] * n,
            "class": ["STAR"] * n,
            "subclass": pa.nulls(n, pa.string()),
            "z": [0.0] * n,
            "zwarning": pa.nulls(n, pa.int64()),
            "snr_r": pa.array(snr_r or [None] * n, pa.float64()),
            "good_fraction": pa.array([r["good_fraction"] for r in rows], pa.float32()),
            "snr": pa.array([r["snr"] for r in rows], pa.float32()),
            "status": status,
            "error": ["truncated: short" if s != "ok" else "" for s in status],
            "flux1d": tensor_array(inputs(rows)),
            ROW: pa.array(range(n), pa.int64()),
        }
    )


def predict(uris, table):
    roles = plan_bundles([(u, read_manifest(u)) for u in uris])
    return Predictor(roles)(table).to_pydict()


def test_bit_values_are_fixed():
    assert (bits.LOW_CONFIDENCE, bits.OUT_OF_DISTRIBUTION, bits.LOW_SNR) == (1, 2, 4)
    assert (bits.FEW_GOOD_PIXELS, bits.BAD_READ, bits.CHAIN_DISAGREES) == (8, 16, 32)
    assert (bits.Z_UNRELIABLE, bits.TEMPLATE_DISAGREES) == (64, 128)
    values = list(bits.BITS.values())
    assert values == [1 << k for k in range(len(values))]  # appended, never renumbered
    assert bits.bit_names(2 | 16 | 256) == ["OUT_OF_DISTRIBUTION", "BAD_READ", "BIT8"]
    assert bits.bit_value("low_snr") == 4
    with pytest.raises(ValueError, match="unknown warning bit"):
        bits.bit_value("SHINY")


def typical_clean_rows(chain, kind: int, rng, n: int = 80) -> dict:
    """The least out-of-distribution of ``n`` clean spectra of one kind, after checking
    that the calibrated OOD bit flags few of them (3 % asked for; 20 % allowed here,
    which 80 draws at the worst rate seen over fixture seeds, 7.5 %, exceed with
    p < 1e-3). Any one draw may be among the few flagged (the fixture's model differs
    a little between hosts' float kernels): the most typical one is not."""
    pool = [grid_row(noisy(kind, rng)) for _ in range(n)]
    out = predict([chain["class3"]], table_of(pool))
    flagged = [bool(w & bits.OUT_OF_DISTRIBUTION) for w in out["warning"]]
    assert sum(flagged) <= 0.2 * n, f"{sum(flagged)} of {n} clean spectra flagged OOD"
    return pool[int(np.argmin(out["ood_score"]))]


def test_constructed_spectra_get_their_bits(chain):
    rng = np.random.default_rng(7)
    all_masked = np.ones(len(WAVE), bool)
    clean_star = typical_clean_rows(chain, 0, rng)
    rows = {
        "clean star": clean_star,
        "clean qso": typical_clean_rows(chain, 2, rng),
        "flat line": grid_row(np.full(len(WAVE), 3.0)),
        "all masked": grid_row(shape(0, rng), masked=all_masked),
        "pure noise": grid_row(rng.normal(0, 1, len(WAVE)), snr=1.0),
        "sine wave": grid_row(1.5 + np.sin(2 * np.pi * 25 * X)),
        "unreadable": grid_row(noisy(1, rng)),
        "faint star": dict(clean_star),  # the same flux: only the survey's S/N differs
    }
    names = list(rows)
    status = ["error" if n == "unreadable" else "ok" for n in names]
    snr_r = [3.0 if n == "faint star" else None for n in names]  # the survey's own S/N wins
    out = predict([chain["class3"]], table_of(list(rows.values()), status, snr_r))
    got = dict(zip(names, out["warning"], strict=True))
    assert got["clean star"] == 0 and got["clean qso"] == 0
    assert out["pred_class"][0] == "STAR" and out["pred_class"][1] == "QSO"
    assert got["flat line"] & bits.OUT_OF_DISTRIBUTION
    assert got["all masked"] & bits.FEW_GOOD_PIXELS and got["all masked"] & bits.LOW_SNR
    assert got["all masked"] & bits.OUT_OF_DISTRIBUTION  # the model sees a flat zero row
    assert got["pure noise"] & bits.OUT_OF_DISTRIBUTION and got["pure noise"] & bits.LOW_SNR
    assert got["sine wave"] & bits.OUT_OF_DISTRIBUTION
    assert not got["sine wave"] & (bits.LOW_SNR | bits.FEW_GOOD_PIXELS | bits.BAD_READ)
    assert got["unreadable"] == bits.BAD_READ and out["ood_score"][6] is None
    assert got["faint star"] == bits.LOW_SNR
    ood = dict(zip(names, out["ood_score"], strict=True))
    assert ood["sine wave"] > 3 * ood["clean star"]
    # the flags catch what they should in the report's terms too
    junk = ("flat line", "all masked", "pure noise", "sine wave")
    other = {"STAR": "GALAXY", "GALAXY": "QSO", "QSO": "STAR", None: "STAR"}
    truth = [
        other[p] if n in junk else "STAR" for n, p in zip(names, out["pred_class"], strict=True)
    ]
    truth[1] = "QSO"
    labels = pa.table({"uri": out["uri"], "class": truth})
    catalog = pa.table({k: out[k] for k in ("uri", "status", "pred_class", "confidence",
                                            "ood_score", "warning")})  # fmt: skip
    report = warning_report(catalog, labels)
    assert (report.n_bad_read, report.n_errors, report.n_correct) == (1, 4, 3)
    assert report.fraction("warning != 0") == (1.0, pytest.approx(1 / 3))  # the faint star
    assert report.fraction("LOW_SNR") == (0.5, pytest.approx(1 / 3))  # noise, masked; faint


def test_probabilities_are_calibrated_and_low_confidence_uses_the_threshold(chain, tmp_path):
    rng = np.random.default_rng(8)
    star, galaxy = noisy(0, rng), noisy(1, rng)
    star, galaxy = star / np.median(star), galaxy / np.median(galaxy)
    # star-galaxy blends: somewhere along them the network must hesitate
    rows = [grid_row(f * star + (1 - f) * galaxy) for f in (0.3, 0.5, 0.7)]
    rows.append(grid_row(star))
    cal = read_manifest(chain["class3"])["calibration"]
    tensors = load_bundle(chain["class3"]).calibration_tensors

    def with_threshold(name, threshold):
        cal_t = dict(cal, probabilities={"method": "temperature", "temperature": 6.0})
        cal_t["thresholds"] = dict(cal["thresholds"], low_confidence=threshold)
        save_calibration(chain["class3"], cal_t, tensors, out=str(tmp_path / name))
        return predict([str(tmp_path / name)], table_of(rows))

    first = with_threshold("t0", 0.0)
    model = load_bundle(chain["class3"]).model
    logits, _ = logits_and_features(model, {"flux1d": torch.from_numpy(inputs(rows)).unsqueeze(1)})
    expected = softmax(logits / 6.0)
    # the Predictor runs the BN-folded inference network: float32 rounding differs
    np.testing.assert_allclose(first["prob_star"], expected[:, 0], rtol=1e-4)
    np.testing.assert_allclose(first["confidence"], expected.max(1), rtol=1e-4)
    assert not any(w & bits.LOW_CONFIDENCE for w in first["warning"])
    low, high = min(first["confidence"]), max(first["confidence"])
    assert high - low > 0.05
    mid = (low + high) / 2
    second = with_threshold("mid", mid)
    flagged = [bool(w & bits.LOW_CONFIDENCE) for w in second["warning"]]
    assert flagged == [c < mid for c in second["confidence"]]


def test_chain_disagrees_when_the_stellar_head_does_not_know_the_star(chain):
    rng = np.random.default_rng(9)
    rows = [grid_row(noisy(0, rng)), grid_row(noisy(1, rng)), grid_row(noisy(2, rng))]
    out = predict([chain["forced"], chain["stellar"]], table_of(rows))
    assert out["pred_class"] == ["STAR", "STAR", "STAR"]  # the forced head says STAR
    assert all(p is not None for p in out["pred_subclass"])
    chained = [bool(w & bits.CHAIN_DISAGREES) for w in out["warning"]]
    assert chained == [False, True, True]  # a real star fits the stellar head; the rest not
    # an honest class head: no STAR prediction for the galaxy, no chain bit
    honest = predict([chain["class3"], chain["stellar"]], table_of(rows))
    assert honest["pred_class"] == ["STAR", "GALAXY", "QSO"]
    assert not any(w & bits.CHAIN_DISAGREES for w in honest["warning"])
    assert honest["pred_subclass"][1:] == [None, None]


def test_a_catalog_of_the_old_schema_is_not_resumed(chain, tmp_path):
    uris = [f"/nowhere/{i}.fits" for i in range(3)]
    manifest = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"uri": uris, "survey": ["sdss"] * 3}), manifest)
    roles = plan_bundles([(chain["class3"], read_manifest(chain["class3"]))])
    new = catalog_schema(roles, {"format_version": 1})
    old = pa.schema(
        [f for f in new if f.name not in ("ood_score", "warning", "z_pred_err")],
        metadata=new.metadata,
    )
    store = CatalogStore(str(tmp_path / "cat"))
    store.open(
        CatalogPlan(
            release=manifest,
            fingerprint=release_fingerprint(uris),
            n_rows=3,
            chunk_size=2,
            bundles=[
                {"uri": r.uri, "version": r.version, "model_name": r.model_name} for r in roles
            ],
            catalog_id="old",
        )
    )
    nulls = {f.name: pa.nulls(2, f.type) for f in old}
    nulls["uri"], nulls["status"] = pa.array(uris[:2]), pa.array(["ok", "ok"])
    store.write_chunk(0, pa.table(nulls, schema=old), "r0")
    with pytest.raises(CatalogStoreError, match=r"catalog format 1 .*missing \['ood_score'"):
        classify_release(manifest, [chain["class3"]], str(tmp_path / "cat"), ClassifyConfig(2))
