"""Ray Train on a local cluster: two CPU workers learn, a dying worker resumes from the
checkpoint, a stopped run resumes at the next epoch; the bundle is usable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import ray.train
import torch

from raysurvey.models.bundle import load_bundle
from raysurvey.train.data import DataSpec, training_tables
from raysurvey.train.run import RunSpec, fit

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def class3_release(tmp_path_factory, templates_dir) -> str:
    """240 spectra, stars / galaxies / QSOs, bright: learnable in a few epochs."""
    from raysurvey.synth import SynthConfig, write_release

    out = tmp_path_factory.mktemp("train-release")
    config = SynthConfig(
        n=240,
        out=str(out),
        templates=templates_dir,
        classes=("G", "K", "M", "GALAXY", "QSO"),
        mix="balanced",
        seed=1,
        snr_median=30.0,
        label_noise=0.0,
    )
    return write_release(config, chunk_size=120)


def spec(manifest, tmp_path, name, **kw) -> RunSpec:
    defaults = dict(
        manifest=manifest,
        model="spec_cnn",
        storage=str(tmp_path / "runs"),
        name=name,
        labels="class3",
        epochs=8,
        batch_size=16,
        lr=1e-3,
        balance_to=0,
        num_workers=2,
        cache_features=True,
    )
    return RunSpec(**(defaults | kw))


def test_training_tables_split_and_exclude(class3_release):
    data = training_tables(DataSpec(class3_release, labels="class3", balance_to=150))
    sizes = {k: t.num_rows for k, t in data.splits.items()}
    assert data.label_names == ["STAR", "GALAXY", "QSO"]
    assert data.counts["train"] == {"STAR": 150, "GALAXY": 150, "QSO": 150}  # balanced
    assert sizes["val"] + sizes["test"] + data.excluded < 100  # val / test not replicated
    stellar = training_tables(DataSpec(class3_release, labels="stellar8"))
    assert set(stellar.counts["train"]) <= {"G", "K", "M"}  # galaxies and QSOs excluded


@pytest.fixture(scope="session")
def trained(class3_release, tmp_path_factory, ray_cluster) -> tuple[dict, str]:
    """One two-worker spec_cnn run through the job's command line; (summary, bundle)."""
    import importlib.util

    job = importlib.util.spec_from_file_location("train_job", REPO_ROOT / "jobs" / "train.py")
    module = importlib.util.module_from_spec(job)
    job.loader.exec_module(module)
    tmp = tmp_path_factory.mktemp("trained")
    argv = [
        "--manifest", class3_release, "--model", "spec_cnn", "--labels", "class3",
        "--epochs", "8", "--batch-size", "16", "--lr", "1e-3", "--balance-to", "0",
        "--num-workers", "2", "--cache-features", "--storage", str(tmp / "runs"),
        "--name", "learn", "--bundle-out", str(tmp / "bundle"),
    ]  # fmt: skip
    assert module.main(argv) == 0
    summary = json.loads((tmp / "runs" / "learn" / "summary.json").read_text())
    return summary, str(tmp / "bundle")


def test_two_workers_learn_and_export_a_bundle(trained):
    summary, bundle_uri = trained
    best = summary["best"]
    assert best["val_accuracy"] >= 0.6, best  # chance is ~1/3 (half the rows are stars)
    assert summary["last"]["epoch"] == 8
    bundle = load_bundle(bundle_uri)
    assert bundle.labels == ["STAR", "GALAXY", "QSO"] and bundle.task == "classify"
    assert bundle.metadata["epoch"] == best["epoch"]
    with torch.no_grad():
        out = bundle.model(torch.rand(2, 1, 3700))
    assert out.shape == (2, 3)


def test_evaluate_writes_the_papers_report(trained, class3_release, tmp_path):
    import importlib.util

    job = importlib.util.spec_from_file_location("eval_job", REPO_ROOT / "jobs" / "evaluate.py")
    module = importlib.util.module_from_spec(job)
    job.loader.exec_module(module)
    _, bundle_uri = trained
    out = tmp_path / "eval"
    assert (
        module.main(["--bundle", bundle_uri, "--manifest", class3_release, "--out", str(out)]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    test_rows = training_tables(DataSpec(class3_release, labels="class3")).splits["test"].num_rows
    assert metrics["n_evaluated"] + metrics["n_unreadable"] == test_rows
    assert metrics["accuracy"] > 0.5 and 0 < metrics["macro_f1"] <= 1
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == metrics["n_evaluated"]
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert set(metrics["per_class"]) == {"STAR", "GALAXY", "QSO"}
    assert sum(r["n"] for r in metrics["accuracy_by_snr"]) == metrics["n_evaluated"]
    for name in ("confusion_matrix.png", "accuracy_by_snr.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "per_class.md").read_text().startswith("| Class | Precision (%)")
    assert (out / "accuracy_by_snr.csv").read_text().startswith("snr_lo,snr_hi,n,accuracy")


def test_dead_worker_resumes_from_the_checkpoint(class3_release, tmp_path, ray_cluster):
    marker = tmp_path / "failed-once"
    summary = fit(
        spec(
            class3_release,
            tmp_path,
            "failure",
            epochs=3,
            fail_at_epoch=2,
            fail_marker=str(marker),
        )
    )
    assert marker.read_text() == "failed in epoch 2\n"
    last = summary["last"]
    assert last["epoch"] == 3
    assert last["resumed_at_epoch"] == 2  # epoch 1's checkpoint, not a fresh start


def test_rerun_with_the_same_name_resumes(class3_release, tmp_path, ray_cluster):
    """A run stopped after epoch 1 (its worker dies with no retries left, so the driver
    gives up) continues at epoch 2 when rerun with the same storage and name."""
    with pytest.raises(ray.train.TrainingFailedError):
        fit(
            spec(
                class3_release,
                tmp_path,
                "resume",
                epochs=3,
                max_failures=0,
                fail_at_epoch=2,
                fail_marker=str(tmp_path / "stop"),
            )
        )
    summary = fit(spec(class3_release, tmp_path, "resume", epochs=3))
    # (the hook waits 3 s before raising so epoch 1's report is registered first: a run
    # killed within a moment of a report may lose that one and resume a step earlier)
    assert summary["last"]["resumed_at_epoch"] == 2
    assert summary["last"]["epoch"] == 3
    assert np.isfinite(summary["last"]["val_loss"])
    json.dumps(summary)  # the summary the job writes is plain JSON


def test_redshift_regression_reports_r2_and_failures(class3_release, tmp_path, ray_cluster):
    from raysurvey.train.evaluate import evaluate

    bundle_uri = str(tmp_path / "z-bundle")
    summary = fit(
        spec(class3_release, tmp_path, "redshift", task="redshift", epochs=2, bundle_out=bundle_uri)
    )
    last = summary["last"]
    assert summary["label_names"] == ["z"]
    for key in ("val_r2", "val_r2_z", "val_rmse_z", "val_catastrophic_rate"):
        assert np.isfinite(last[key]), key
    assert 0.0 <= last["val_catastrophic_rate"] <= 1.0
    bundle = load_bundle(bundle_uri)
    assert bundle.task == "redshift" and bundle.labels == ["z"]
    assert bundle.target_normalisation["std"][0] > 0
    report = evaluate(bundle_uri, class3_release, str(tmp_path / "eval"))
    assert report["targets"] == ["z"] and len(report["r2"]) == 1 and len(report["rmse"]) == 1
    assert 0.0 <= report["catastrophic_rate"] <= 1.0
