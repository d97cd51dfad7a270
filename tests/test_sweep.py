"""Ray Tune sweeps: row selection, trial names, mean +- std tables, refusals, and a
2-choice x 2-seed sweep run, interrupted and resumed on a `ray start` cluster."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from raysurvey.train.feature_store import FeatureStoreError, rows_for
from raysurvey.train.sweep import Choice, SweepError, SweepSpec, _prepare, select_rows, trial_name
from raysurvey.train.sweep_tables import aggregate, mean_std, write_tables

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP = str(REPO_ROOT / "tune/sweep_attention.py")


def manifest(n_per: dict[str, int], snr: float = 20.0) -> pa.Table:
    rows = []
    for subclass, n in n_per.items():
        cls = "STAR" if subclass not in ("GALAXY", "QSO") else subclass
        for k in range(n):
            rows.append(
                {
                    "uri": f"file:///rel/{subclass}-{k}.fits",
                    "class": cls,
                    "subclass": subclass if cls == "STAR" else "",
                    "snr_i": snr + k,
                }
            )
    return pa.Table.from_pylist(rows)


def test_select_rows_takes_per_class_after_the_snr_cut():
    table = manifest({"G2": 6, "K1": 3, "GALAXY": 4}, snr=8.0)  # snr_i 8, 9, 10, ...
    rows = select_rows(table, "stellar8", per_class=2, min_snr=9.0)
    labels = [s[0] for s in rows.column("subclass").to_pylist()]
    assert sorted(labels) == ["G", "G", "K"]  # K1 has one spectrum above 9; no galaxies
    assert all(v > 9.0 for v in rows.column("snr_i").to_pylist())
    uris = table.column("uri").to_pylist()
    picked = [uris.index(u) for u in rows.column("uri").to_pylist()]
    assert picked == sorted(picked)  # manifest order
    again = select_rows(table, "stellar8", per_class=2, min_snr=9.0)
    assert again.equals(rows)  # the same rows for every seed and rerun


def test_trial_names_are_deterministic():
    assert trial_name({"choice": "coord", "seed": 2}) == "coord-s2"
    a = trial_name({"choice": "map2d", "seed": 0, "lr": 3e-4, "weight_decay": 0.01})
    assert a == trial_name({"choice": "map2d", "seed": 0, "lr": 3e-4, "weight_decay": 0.01})
    assert a.startswith("map2d-s0-lr3.0e-04-we1.0e-02-")
    assert a != trial_name({"choice": "map2d", "seed": 0, "lr": 3.1e-4, "weight_decay": 0.01})


def sweep_spec(tmp_path, **kw) -> SweepSpec:
    choices = (
        Choice("none", "spec_cnn", {"attention": "none"}, paper="87.17"),
        Choice("se", "spec_cnn", {"attention": "se"}, paper="88.54"),
        Choice("eca", "spec_cnn", {"attention": "eca"}),
    )
    return SweepSpec(
        name="attention",
        storage=str(tmp_path),
        manifest="unused",
        choices=choices,
        paper_source="Table 3",
        **kw,
    )


def test_checkpoints_of_recorded_trials_are_removed_and_others_kept(tmp_path):
    from raysurvey.train.sweep import _remove_recorded_checkpoints

    sweep = sweep_spec(tmp_path)
    root = Path(sweep.root)
    for trial in ("none-s0", "se-s0"):  # both hold a checkpoint and Train's snapshot
        (root / "train" / trial / "checkpoint_0001").mkdir(parents=True)
        (root / "train" / trial / "checkpoint_manager_snapshot.json").write_text("{}")
    (root / "results").mkdir()
    (root / "results" / "none-s0.json").write_text("{}")  # killed before its clean-up
    _remove_recorded_checkpoints(sweep)
    assert not (root / "train" / "none-s0").exists()
    assert (root / "train" / "se-s0" / "checkpoint_0001").is_dir()  # unfinished: resumes


def result(choice, seed, test, f1, val, bundle) -> dict:
    return {
        "trial": f"{choice}-s{seed}",
        "choice": choice,
        "seed": seed,
        "val_accuracy": val,
        "val_macro_f1": val,
        "test_accuracy": test,
        "test_macro_f1": f1,
        "bundle": bundle,
    }


def test_tables_mean_std_and_best_by_validation(tmp_path):
    spec = sweep_spec(tmp_path)
    bundles = tmp_path / "b"
    for name in ("none-s0", "none-s1", "se-s0", "se-s1", "se-s2"):
        (bundles / name).mkdir(parents=True)
        (bundles / name / "bundle.json").write_text(json.dumps({"trial": name}))
    results = [
        result("none", 0, 0.80, 0.70, 0.79, str(bundles / "none-s0")),
        result("none", 1, 0.90, 0.80, 0.91, str(bundles / "none-s1")),
        result("se", 0, 0.85, 0.75, 0.84, str(bundles / "se-s0")),
        result("se", 1, 0.86, 0.77, 0.86, str(bundles / "se-s1")),
        result("se", 2, 0.90, 0.81, 0.87, str(bundles / "se-s2")),
    ]
    results_dir = tmp_path / "attention/results"
    results_dir.mkdir(parents=True)
    for r in results:
        (results_dir / f"{r['trial']}.json").write_text(json.dumps(r))

    rows = aggregate(spec, results)
    assert [r["choice"] for r in rows] == ["none", "se", "eca"]
    none, se, eca = rows
    assert none["trials"] == 2 and none["test_accuracy_mean"] == pytest.approx(0.85)
    assert none["test_accuracy_std"] == pytest.approx(math.sqrt(0.005))  # sample std, n - 1
    assert se["test_macro_f1_mean"] == pytest.approx(0.7766666, abs=1e-6)
    assert se["test_macro_f1_std"] == pytest.approx(statistics.stdev([0.75, 0.77, 0.81]))
    assert eca["trials"] == 0 and math.isnan(eca["test_accuracy_mean"])
    assert math.isnan(mean_std([0.5])[1])

    summary = write_tables(spec)
    md = (tmp_path / "attention/table.md").read_text().splitlines()
    assert md[0] == (
        "| attention | trials | test accuracy (%) | test macro-F1 (%) | paper (Table 3) |"
    )
    assert md[2] == "| none | 2 | 85.00 ± 7.07 | 75.00 ± 7.07 | 87.17 |"
    assert md[4] == "| eca | 0 | - | - | - |"
    csv = (tmp_path / "attention/table.csv").read_text().splitlines()
    assert csv[0].startswith("choice,trials,test_accuracy_mean,test_accuracy_std")
    assert len((tmp_path / "attention/trials.csv").read_text().splitlines()) == 6
    assert (tmp_path / "attention/chart.png").read_bytes()[:4] == b"\x89PNG"
    # se has the better mean validation accuracy (0.857 vs 0.85); its best trial is s2
    assert summary["best"]["choice"] == "se" and summary["best"]["trial"] == "se-s2"
    copied = json.loads((tmp_path / "attention/best_bundle/bundle.json").read_text())
    assert copied == {"trial": "se-s2"}


def test_an_existing_sweep_needs_resume_and_the_same_settings(tmp_path):
    spec = sweep_spec(tmp_path)
    (tmp_path / "attention").mkdir()
    (tmp_path / "attention/_sweep.json").write_text(json.dumps(spec.definition()))
    with pytest.raises(SweepError, match="pass --resume"):
        _prepare(spec, resume=False)
    other = sweep_spec(tmp_path, epochs=9)
    with pytest.raises(SweepError, match=r"other settings \(epochs\)"):
        _prepare(other, resume=True)
    # resources are not settings: a sweep may resume on another cluster
    assert sweep_spec(tmp_path, num_workers=4).definition() == spec.definition()


def test_feature_rows_follow_the_split_and_refuse_unknown_spectra():
    features = pa.table({"uri": ["a", "b", "c"], "x": [1, 2, 3]})
    split = pa.table({"uri": ["c", "a", "a"], "label": [2, 0, 0]})
    rows = rows_for(features, split, ["label"])
    assert rows.column("x").to_pylist() == [3, 1, 1]
    assert rows.column("label").to_pylist() == [2, 0, 0]
    with pytest.raises(FeatureStoreError, match="1 spectra are not in the feature store, e.g. d"):
        rows_for(features, pa.table({"uri": ["d"], "label": [0]}), ["label"])


# -- a real sweep on a cluster of our own -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_stellar_release(tmp_path_factory, templates_dir) -> str:
    from raysurvey.synth import SynthConfig, write_release
    from raysurvey.synth.config import CLASS_GROUPS

    out = tmp_path_factory.mktemp("sweep-release")
    config = SynthConfig(
        n=48, out=str(out), templates=templates_dir, survey="lamost", seed=5,
        classes=CLASS_GROUPS["stellar8"], mix="balanced",
    )  # fmt: skip
    return write_release(config, progress=False)


def sweep_command(head, release, storage, *extra) -> list[str]:
    return [
        sys.executable, SWEEP, "--manifest", release, "--storage", storage,
        "--choices", "none,se", "--seeds", "0,1", "--epochs", "1", "--per-class", "5",
        "--batch-size", "8", "--address", head.address, *extra,
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sweep_runs_is_interrupted_and_resumes(ray_head, tiny_stellar_release, tmp_path):
    storage = str(tmp_path / "sweeps")
    root = Path(storage) / "attention"
    results = root / "results"
    proc = subprocess.Popen(
        sweep_command(ray_head, tiny_stellar_release, storage),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 400
    while proc.poll() is None and time.monotonic() < deadline:
        if results.exists() and len(list(results.glob("*.json"))) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started here
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert 2 <= len(finished) < 4, finished
    bundles = {p.parent.name: p.stat().st_mtime_ns for p in (root / "bundles").glob("*/*.json")}

    again = subprocess.run(
        sweep_command(ray_head, tiny_stellar_release, storage),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "pass --resume" in again.stderr

    resumed = subprocess.run(
        sweep_command(ray_head, tiny_stellar_release, storage, "--resume"),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "resuming" in resumed.stdout
    # finished trials were not trained again: their result and bundle files are untouched
    for name, mtime in finished.items():
        assert (results / name).stat().st_mtime_ns == mtime
    for trial, mtime in bundles.items():
        if trial + ".json" in finished:
            assert (root / "bundles" / trial / "bundle.json").stat().st_mtime_ns == mtime
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    assert sorted(r["trial"] for r in records) == ["none-s0", "none-s1", "se-s0", "se-s1"]

    # the table's means and stds are those of the per-trial results
    lines = (root / "table.csv").read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=True))
        mine = [r for r in records if r["choice"] == row["choice"]]
        acc = [r["test_accuracy"] for r in mine]
        assert int(row["trials"]) == 2
        assert float(row["test_accuracy_mean"]) == pytest.approx(np.mean(acc))
        assert float(row["test_accuracy_std"]) == pytest.approx(np.std(acc, ddof=1))
        f1 = [r["test_macro_f1"] for r in mine]
        assert float(row["test_macro_f1_mean"]) == pytest.approx(np.mean(f1))
    for r in records:  # each test split: about a tenth of 8 classes x 5 spectra
        assert 0 <= r["n_test"] < 20 and 0.0 <= r["test_accuracy"] <= 1.0
    assert "| none | 2 |" in (root / "table.md").read_text()
    from raysurvey.models.bundle import load_bundle

    best = load_bundle(str(root / "best_bundle"))
    assert best.model_name == "spec_cnn" and len(best.labels) == 8
    assert not list((root / "train").glob("*/checkpoint_*"))  # finished trials cleaned up
