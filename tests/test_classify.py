"""classify_release end to end: a damaged release, queries, kills and resumes, ray job
submit against a cluster of our own, and a release and catalog on S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

from raysurvey.cli import main as cli_main
from raysurvey.infer import ClassifyConfig, classify_release
from raysurvey.infer.store import COMMITTED, DIE_BEFORE_COMMIT_ENV, PAUSE_AFTER_COMMITS_ENV
from raysurvey.labels import CLASS3, class3_label
from raysurvey.models import create_model
from raysurvey.models.bundle import save_bundle
from raysurvey.synth import SynthConfig, write_release

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB = str(REPO_ROOT / "jobs" / "classify_release.py")
N = 1000
BROKEN = {  # row -> how the file is damaged
    **{i: "truncated" for i in (5, 111, 222, 333)},
    **{i: "not_fits" for i in (400, 501, 602)},
    **{i: "not_found" for i in (703, 804, 999)},
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def release(tmp_path_factory, templates_dir) -> str:
    """1000 spectra, both surveys and every layout, 10 of the files then damaged."""
    out = tmp_path_factory.mktemp("classify-release")
    manifest = write_release(
        SynthConfig(n=N, out=str(out), templates=templates_dir, seed=5), progress=False
    )
    uris = pq.read_table(manifest, columns=["uri"]).column("uri").to_pylist()
    for row, how in BROKEN.items():
        path = Path(uris[row])
        if how == "truncated":
            path.write_bytes(path.read_bytes()[:3000])
        elif how == "not_fits":
            path.write_bytes(b"<html>503 Service Unavailable</html>" * 50)
        else:
            path.unlink()
    return manifest


@pytest.fixture(scope="session")
def small_release(release, tmp_path_factory) -> str:
    """The first 300 rows of ``release`` (3 of them damaged): for the subprocess runs."""
    path = tmp_path_factory.mktemp("small-release") / "manifest.parquet"
    pq.write_table(pq.read_table(release).slice(0, 300), path)
    return str(path)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> str:
    """A small class3 spec_cnn (seeded init): predictions are deterministic."""
    torch.manual_seed(0)
    model = create_model("spec_cnn", num_classes=3, channels=(8,) * 8, hidden_dim=64, embed_dim=32)
    path = str(tmp_path_factory.mktemp("bundle") / "class3")
    save_bundle(model, path, labels=list(CLASS3), metadata={"label_set": "class3"})
    return path


@pytest.fixture(scope="session")
def catalog(release, bundle, tmp_path_factory, ray_cluster) -> str:
    out = str(tmp_path_factory.mktemp("catalog") / "cat")
    result = classify_release(release, [bundle], out, ClassifyConfig(chunk_size=300))
    assert result.chunks_written == 4 and result.rows_written == N
    return out


def read_catalog(path: str):
    files = sorted(str(p) for p in Path(path).glob("part-*.parquet"))
    return pads.dataset(files, format="parquet").to_table()


def test_one_row_per_spectrum_errors_with_reasons(release, catalog):
    table = read_catalog(catalog).to_pydict()
    manifest = pq.read_table(release).to_pydict()
    assert table["uri"] == manifest["uri"]  # every spectrum once, in release order
    assert table["obsid"] == manifest["obsid"] and table["specobjid"] == manifest["specobjid"]
    errors = {i for i, s in enumerate(table["status"]) if s == "error"}
    assert errors == set(BROKEN)
    for row, how in BROKEN.items():
        assert table["error"][row].startswith(how + ":"), table["error"][row]
        assert table["pred_class"][row] is None and table["prob_star"][row] is None
    ok = [i for i in range(N) if i not in errors]
    probs = np.array([[table[f"prob_{c.lower()}"][i] for c in CLASS3] for i in ok])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert all(table["error"][i] is None for i in ok)
    assert all(table["confidence"][i] == pytest.approx(probs[k].max()) for k, i in enumerate(ok))
    assert all(0 <= table["_healpix_29"][i] < 12 * 4**29 for i in ok)
    assert len(set(zip(table["uri"], table["obsid"], table["specobjid"], strict=True))) == N
    assert set(table["model_name"]) == {"spec_cnn"} and len(set(table["run_id"])) == 1


def test_catalog_accuracy_equals_the_evaluators(release, bundle, catalog, tmp_path):
    from raysurvey.train.evaluate import evaluate

    result = evaluate(bundle, release, str(tmp_path / "eval"), split="all", min_snr=0)
    assert result["reference"].startswith("synthetic truth")
    table = read_catalog(catalog).to_pydict()
    truth = {  # a synthetic release is scored against its truth labels
        r["uri"]: r["true_class"] for r in pq.read_table(release).to_pylist()
    }
    pairs = [
        (class3_label(truth[u]), p)
        for u, p, s in zip(table["uri"], table["pred_class"], table["status"], strict=True)
        if s == "ok" and class3_label(truth[u]) is not None
    ]
    accuracy = np.mean([truth == pred for truth, pred in pairs])
    assert len(pairs) == result["n"]
    assert accuracy == pytest.approx(result["accuracy"], abs=1e-12)


def test_split_pipeline_writes_the_fused_pipelines_rows(small_release, bundle, catalog, tmp_path):
    """The default CPU path fuses decode, modalities and prediction in one actor; the
    three-stage path that feeds GPUs must give the same catalog rows."""
    out = str(tmp_path / "split")
    config = ClassifyConfig(chunk_size=300, fused=False)
    result = classify_release(small_release, [bundle], out, config)
    assert result.rows_written == 300 and result.check.rows == 300
    split = read_catalog(out).to_pydict()
    fused = read_catalog(catalog).slice(0, 300).to_pydict()
    for column in ("uri", "status", "error", "pred_class", "warning"):
        assert split[column] == fused[column], column
    for column in ("prob_star", "prob_galaxy", "prob_qso", "confidence"):
        a = np.array(split[column], dtype=float)
        b = np.array(fused[column], dtype=float)
        np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)


def test_query_and_summary(catalog, tmp_path, capsys):
    table = read_catalog(catalog).to_pydict()
    sql = "SELECT pred_class, count(*) AS n FROM catalog WHERE status = 'ok' GROUP BY 1"
    assert cli_main(["query", catalog, sql]) == 0
    printed = capsys.readouterr().out.splitlines()
    got = {line.split()[0]: int(line.split()[1]) for line in printed[2:]}
    want = {c: table["pred_class"].count(c) for c in set(table["pred_class"]) if c}
    assert got == want and sum(got.values()) == N - len(BROKEN)
    skymap = tmp_path / "sky.png"
    assert cli_main(["catalog-summary", catalog, "--skymap", str(skymap)]) == 0
    text = capsys.readouterr().out
    assert "error" in text and "truncated" in text and "not_found" in text
    assert skymap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_committed_chunks_and_other_plans_are_refused(
    release, bundle, catalog, tmp_path
):
    before = {p.name: p.stat().st_mtime_ns for p in Path(catalog).glob("part-*.parquet")}
    again = classify_release(release, [bundle], catalog, ClassifyConfig(chunk_size=300))
    assert again.chunks_written == 0 and again.chunks_skipped == 4 and again.check.rows == N
    assert {p.name: p.stat().st_mtime_ns for p in Path(catalog).glob("part-*.parquet")} == before
    from raysurvey.infer import CatalogStoreError

    with pytest.raises(CatalogStoreError, match="chunk-size 500 vs 300"):
        classify_release(release, [bundle], catalog, ClassifyConfig(chunk_size=500))


# -- a cluster of our own: jobs as subprocesses, kills, ray job submit, S3 -----------------


def job_command(head, release, bundle, output, *extra) -> list[str]:
    return [
        sys.executable, JOB, "--release", release, "--bundle", bundle, "--output", output,
        "--address", head.address, *extra,
    ]  # fmt: skip


def committed(output: str) -> int:
    return len(list((Path(output) / COMMITTED).glob("*.json")))


def assert_exactly_once(output: str, release: str) -> None:
    table = read_catalog(output)
    want = pq.read_table(release, columns=["uri"]).column("uri").to_pylist()
    assert table.column("uri").to_pylist() == want
    assert len(list(Path(output).glob("part-*.parquet"))) == committed(output)


def test_kill_the_driver_after_commits_then_rerun(ray_head, small_release, bundle, tmp_path):
    # The driver pauses after its third commit (a test hook), so the SIGKILL lands at a
    # known point: a 300-row job can otherwise commit all 12 chunks between two polls.
    output = str(tmp_path / "cat")
    proc = subprocess.Popen(
        job_command(ray_head, small_release, bundle, output, "--chunk-size", "25"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {PAUSE_AFTER_COMMITS_ENV: "3"},
    )
    deadline = time.monotonic() + 240
    while committed(output) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before its third commit"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = committed(output)
    assert done_before == 3, done_before
    rerun = subprocess.run(
        job_command(ray_head, small_release, bundle, output, "--chunk-size", "25"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{done_before} already committed, {12 - done_before} to do" in rerun.stderr
    assert "300 rows in 12 chunks, one per release row" in rerun.stdout
    assert_exactly_once(output, small_release)


def test_killed_between_file_and_commit_then_rerun(ray_head, small_release, bundle, tmp_path):
    output = str(tmp_path / "cat")
    env = os.environ | {DIE_BEFORE_COMMIT_ENV: "1"}
    command = job_command(ray_head, small_release, bundle, output, "--chunk-size", "120")
    died = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert died.returncode == 137, died.stderr[-2000:]
    assert (Path(output) / "part-000001.parquet").exists()  # written, never committed
    assert not (Path(output) / COMMITTED / "part-000001.json").exists()
    before = committed(output)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{before} already committed, {3 - before} to do" in rerun.stderr
    assert_exactly_once(output, small_release)


def test_kill_a_predictor_worker_mid_run(ray_head, release, bundle, tmp_path):
    from conftest import processes_matching

    output = str(tmp_path / "cat")
    command = job_command(ray_head, release, bundle, output, "--chunk-size", "100")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while committed(output) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victims = [p for p in processes_matching("Predictor") if p != proc.pid]
    assert victims, "no predictor actor process found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:  # the job may fail; a rerun must then complete it
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_exactly_once(output, release)


def test_release_and_catalog_on_s3(ray_head, s3_bucket, bundle, templates_dir, capsys):
    release = write_release(
        SynthConfig(n=60, out=f"{s3_bucket}/release", templates=templates_dir, seed=3),
        progress=False,
    )
    output = f"{s3_bucket}/catalogs/v1"
    job = subprocess.run(
        job_command(ray_head, f"{s3_bucket}/release/", bundle, output, "--chunk-size", "25"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert "(listed; ids and labels from the headers)" in job.stderr
    assert "60 rows in 3 chunks" in job.stdout
    sql = "SELECT count(*), count(DISTINCT uri), count(obsid) + count(specobjid) FROM catalog"
    assert cli_main(["query", output, sql]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["60", "60", "60"]
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    assert len(fs.ls(f"{output}/_committed")) == 3
    assert sorted(fs.ls(output, detail=False))[-3:] == [
        f"{output[5:]}/part-00000{k}.parquet" for k in range(3)
    ]
    with fs.open(release) as f:
        assert pq.read_table(f).num_rows == 60


def ray_list(cluster, kind: str) -> list[dict]:
    """``ray list KIND`` of a cluster through its dashboard, as dicts."""
    import json

    ray_bin = str(Path(sys.executable).with_name("ray"))
    listed = subprocess.run(
        [ray_bin, "list", kind, "--address", cluster.dashboard, "--format", "json",
         "--detail", "--limit", "10000"],
        capture_output=True, text=True, timeout=120, check=True, env=cluster.env,
    )  # fmt: skip
    return json.loads(listed.stdout)


def test_ray_job_submit_to_a_two_node_cluster(ray_two_nodes, small_release, bundle, tmp_path):
    """The deployed shape (infra/): a CPU-less head and a worker node with token
    authentication on; ``ray job submit`` with the working dir and infra/runtime_env.yaml
    is refused without the token and runs with it; the work runs on the worker node."""
    output = str(tmp_path / "cat")
    submit = [
        str(Path(sys.executable).with_name("ray")), "job", "submit",
        "--address", ray_two_nodes.dashboard, "--working-dir", str(REPO_ROOT),
        "--runtime-env", str(REPO_ROOT / "infra/runtime_env.yaml"),
        "--", sys.executable, "jobs/classify_release.py", "--release", small_release,
        "--bundle", bundle, "--output", output, "--chunk-size", "150",
    ]  # fmt: skip
    no_token = {k: v for k, v in ray_two_nodes.env.items() if not k.startswith("RAY_AUTH_")}
    refused = subprocess.run(submit, capture_output=True, text=True, timeout=120, env=no_token)
    assert (
        refused.returncode != 0 and "Authentication required" in refused.stdout + refused.stderr
    ), (refused.stdout + refused.stderr)[-2000:]
    assert not Path(output).exists()
    job = subprocess.run(submit, capture_output=True, text=True, timeout=400, env=ray_two_nodes.env)
    assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
    assert "succeeded" in job.stdout + job.stderr
    assert "300 rows in 2 chunks, one per release row" in job.stdout
    assert_exactly_once(output, small_release)
    run_ids = set(read_catalog(output).column("run_id").to_pylist())
    assert len(run_ids) == 1 and next(iter(run_ids)).startswith("raysubmit_")

    nodes = {n["node_id"]: n for n in ray_list(ray_two_nodes, "nodes") if n["state"] == "ALIVE"}
    assert len(nodes) == 2
    head = next(n for n in nodes.values() if n["is_head_node"])
    assert not head["resources_total"].get("CPU")  # num-cpus 0: no task lands there
    actors = [a for a in ray_list(ray_two_nodes, "actors") if "MapWorker" in a["class_name"]]
    assert any("Predictor" in a["class_name"] for a in actors), [a["class_name"] for a in actors]
    # (the state API can forget the node of an actor that has died: its node_id is None)
    placed = {a["node_id"] for a in actors if a["node_id"]}
    assert placed == {n for n in nodes if n != head["node_id"]}
