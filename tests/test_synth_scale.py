"""Generation at scale: bounded memory, the Ray job, and the command line."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from raysurvey.cli import main

PEAK_RSS_SCRIPT = """
import resource, sys
from raysurvey.synth import SynthConfig, write_release
config = SynthConfig(n=int(sys.argv[1]), out=sys.argv[2], templates=sys.argv[3],
                     survey="lamost", lamost_layout="image", seed=1)
write_release(config, chunk_size=500, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(n: int, out: str, templates: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(n), out, templates],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_generator_memory_is_flat_in_release_size(tmp_path, templates_dir) -> None:
    """2k and 8k spectra: peak RSS of the generator process within 40 MiB of each other
    (a generator holding its spectra would grow by ~600 MiB; larger releases are in
    benchmarks/)."""
    small = peak_rss_kib(2000, str(tmp_path / "small"), templates_dir)
    large = peak_rss_kib(8000, str(tmp_path / "large"), templates_dir)
    assert pq.read_metadata(tmp_path / "large/manifest.parquet").num_rows == 8000
    print(f"peak RSS: 2k {small / 1024:.0f} MiB, 8k {large / 1024:.0f} MiB")
    assert large - small < 40 * 1024, (small, large)


def test_ray_job_writes_the_same_release(tmp_path, templates_dir, ray_cluster) -> None:
    sys.path.insert(0, "jobs")
    try:
        import make_release
    finally:
        sys.path.pop(0)
    common = ["--n", "24", "--templates", templates_dir, "--seed", "8", "--survey", "mixed"]
    assert make_release.main([*common, "--out", str(tmp_path / "ray"), "--chunk-size", "5"]) == 0
    assert main(["synth", *common, "--out", str(tmp_path / "local"), "--chunk-size", "24"]) == 0
    ray_rows = pq.read_table(tmp_path / "ray/manifest.parquet").to_pylist()
    local_rows = pq.read_table(tmp_path / "local/manifest.parquet").to_pylist()
    assert len(ray_rows) == 24
    for a, b in zip(ray_rows, local_rows, strict=True):
        rel_a = a.pop("uri").split("/ray/", 1)[1]
        rel_b = b.pop("uri").split("/local/", 1)[1]
        assert rel_a == rel_b and a == b
        assert (tmp_path / "ray" / rel_a).read_bytes() == (tmp_path / "local" / rel_b).read_bytes()


def test_synth_cli_prints_summary_and_progress(tmp_path, templates_dir, capsys) -> None:
    args = ["synth", "--n", "22", "--out", str(tmp_path), "--templates", templates_dir]
    assert (
        main([*args, "--mix", "balanced", "--classes", "stellar8", "GALAXY", "--chunk-size", "11"])
        == 0
    )
    captured = capsys.readouterr()
    assert "22/22 spectra" in captured.err and "Redrock templates" in captured.err
    assert "22 spectra" in captured.out and "S/N_r per pixel" in captured.out
    rows = pq.read_table(tmp_path / "manifest.parquet").to_pylist()
    assert {r["true_class"] for r in rows} == {"STAR", "GALAXY"}


def test_synth_without_templates_says_so(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("RAYSURVEY_TEMPLATES", raising=False)
    assert main(["synth", "--n", "3", "--out", str(tmp_path)]) == 0
    assert "built-in physical model" in capsys.readouterr().err


def test_plot_spectra_writes_a_png(tmp_path, templates_dir) -> None:
    main(
        [
            "synth",
            "--n",
            "11",
            "--out",
            str(tmp_path),
            "--templates",
            templates_dir,
            "--mix",
            "balanced",
        ]
    )
    png = tmp_path / "sheet.png"
    assert main(["plot-spectra", str(tmp_path / "manifest.parquet"), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000


def test_demo_classifies_a_release_with_a_cached_bundle(
    tmp_path, templates_dir, ray_cluster, capsys
) -> None:
    """The demo's release -> classify -> query path, reusing a bundle "trained" before
    by the same code (training itself is covered by tests/test_train.py)."""
    import torch

    from raysurvey.demo import code_version
    from raysurvey.labels import CLASS3
    from raysurvey.models import create_model
    from raysurvey.models.bundle import save_bundle

    work = tmp_path / "demo"
    torch.manual_seed(0)
    model = create_model("spec_cnn", num_classes=3, channels=(4,) * 8, hidden_dim=16)
    save_bundle(
        model, str(work / "bundles" / f"spec_cnn-class3-{code_version()}"), labels=list(CLASS3)
    )
    argv = ["demo", "--workdir", str(work), "--templates", templates_dir, "--n", "60"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "60 spectra" in text and "reusing" in text
    assert "catalog check: 60 rows in 1 chunks, one per release row" in text
    assert "survey_class  pred_class" in text and (work / "skymap.png").exists()
    # the real-data step: every labelled real file classified, agreement reported
    from raysurvey.realdata import find_realdata

    if find_realdata() is None:
        assert "real spectra: none found" in text
        return
    assert "agreement with the survey pipeline" in text
    report = (work / "realcheck" / "agreement.txt").read_text()
    assert "read errors (1, not counted)" in report and "confusion" in report
    assert (work / "realcheck" / "confusion.png").exists()
