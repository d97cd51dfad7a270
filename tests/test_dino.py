"""DINO pretraining: the method's pieces against hand computation, the loss falling on
real (synthetic) spectra, and the Ray Train job end to end: a killed worker resumes,
the backbone fine-tunes through ``jobs/train.py --pretrained`` into a bundle that
``classify_release`` runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
import torch
from torch import nn

from raysurvey.train.dino import (
    DINOHead,
    DINOLoss,
    DINOModel,
    HeadConfig,
    cosine_schedule,
    dino_forward,
    ema_update,
    teacher_temp_schedule,
)
from raysurvey.train.dino_views import ViewConfig, crop_resize, make_views

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "jobs"))

TINY = {"modality": "map2d", "hidden_size": 32, "intermediate_size": 64}
SMALL_HEAD = HeadConfig(out_dim=64, hidden_dim=32, bottleneck_dim=16)


def test_ema_update_is_the_formula():
    teacher, student = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        teacher.bias.copy_(torch.tensor([10.0, -10.0]))
        student.weight.copy_(torch.tensor([[5.0, 6.0], [7.0, 8.0]]))
        student.bias.copy_(torch.tensor([0.0, 0.0]))
    ema_update(teacher, student, 0.9)
    # 0.9 * teacher + 0.1 * student, by hand
    assert torch.allclose(teacher.weight, torch.tensor([[1.4, 2.4], [3.4, 4.4]]))
    assert torch.allclose(teacher.bias, torch.tensor([9.0, -9.0]))
    assert torch.equal(student.weight, torch.tensor([[5.0, 6.0], [7.0, 8.0]]))  # untouched


def test_centre_update_is_an_ema_of_the_batch_mean():
    loss = DINOLoss(out_dim=3, center_momentum=0.9)
    loss.update_center(torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]))
    assert torch.allclose(loss.center, torch.tensor([[0.2, 0.3, 0.4]]))  # 0.1 * [2, 3, 4]
    loss.update_center(torch.tensor([[0.0, 0.0, 10.0]]))
    assert torch.allclose(loss.center, torch.tensor([[0.18, 0.27, 1.36]]))


def test_loss_is_the_cross_entropy_over_pairs_of_different_views():
    loss = DINOLoss(out_dim=2, student_temp=0.5)
    loss.center.copy_(torch.tensor([[0.5, 0.0]]))
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # 2 global views, batch 1
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]])  # 3 views, batch 1
    got = loss(student, teacher, n_views=3, teacher_temp=0.25)

    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    q = [softmax((np.array(t) - [0.5, 0.0]) / 0.25) for t in teacher.tolist()]
    logp = [np.log(softmax(np.array(s) / 0.5)) for s in student.tolist()]
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]  # (teacher view, student view), never equal
    expected = np.mean([-(q[a] * logp[b]).sum() for a, b in pairs])
    assert got.item() == pytest.approx(expected, rel=1e-6)


class Spy(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x.flatten(1)[:, :4]


def test_teacher_sees_only_the_global_views():
    views = [torch.full((2, 3, 2, 2), float(v)) for v in range(5)]  # 2 global + 3 local
    teacher, student = Spy(), Spy()
    loss, teacher_out = dino_forward(student, teacher, DINOLoss(4), views, 2, 0.04)
    (seen,) = teacher.seen
    assert torch.equal(seen, torch.cat(views[:2]))  # views 0 and 1 only
    assert torch.equal(student.seen[0], torch.cat(views))
    assert teacher_out.shape == (4, 4) and torch.isfinite(loss)


def test_schedules():
    lr = cosine_schedule(1.0, 0.0, total_steps=10, warmup_steps=2, warmup_start=0.0)
    assert len(lr) == 10
    assert lr[:3].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert lr[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert np.all(np.diff(lr[2:]) < 0)
    momentum = cosine_schedule(0.996, 1.0, 5)
    assert momentum[0] == 0.996 and np.all(np.diff(momentum) > 0) and momentum[-1] < 1
    temps = teacher_temp_schedule(0.04, 0.07, warmup_epochs=4, epochs=6)
    assert temps.tolist() == pytest.approx([0.04, 0.05, 0.06, 0.07, 0.07, 0.07])


def test_head_output_is_bounded_by_the_normalised_layers():
    head = DINOHead(8, SMALL_HEAD)
    out = head(torch.randn(5, 8) * 100)
    # l2-normalised bottleneck times rows of unit norm (gain fixed at 1): |out| <= 1
    assert out.shape == (5, 64) and out.abs().max() <= 1 + 1e-5
    gain = head.last_layer.parametrizations.weight.original0
    assert not gain.requires_grad and torch.all(gain == 1)


def test_crop_resize_and_views():
    flux = np.arange(10, dtype=np.float32)[None].repeat(2, axis=0)
    same = crop_resize(flux, np.array([0.0, 0.0]), np.array([10.0, 10.0]))
    assert np.allclose(same, flux)
    half = crop_resize(flux, np.array([2.0, 5.0]), np.array([5.5, 5.0]))
    assert np.allclose(half[0], np.linspace(2, 6.5, 10)) and np.allclose(half[1, [0, -1]], [5, 9])
    rng = np.random.default_rng(0)
    views = make_views(
        np.abs(rng.normal(20, 5, (3, 3700))), None, "simple", {}, rng, ViewConfig(n_local=3)
    )
    assert len(views) == 5 and all(v.shape == (3, 224, 224, 3) for v in views)
    assert views[0].dtype == np.uint8 and not np.array_equal(views[0], views[1])


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, templates_dir) -> str:
    from raysurvey.synth import SynthConfig, write_release

    out = tmp_path_factory.mktemp("dino-release")
    config = SynthConfig(
        n=60,
        out=str(out),
        templates=templates_dir,
        classes=("G", "M", "GALAXY", "QSO"),
        mix="balanced",
        seed=4,
        snr_median=30.0,
    )
    return write_release(config, chunk_size=60, progress=False)


def test_dino_loss_decreases_on_a_small_release(tiny_release):
    import pyarrow.parquet as pq

    from raysurvey.data.decode import decode_uris
    from raysurvey.models.inputs import to_model_tensor
    from raysurvey.train.dino import param_groups

    table = pq.read_table(tiny_release, columns=["uri", "survey"]).slice(0, 16)
    decoded = decode_uris(table.column("uri").to_pylist())
    survey = np.asarray(table.column("survey").to_pylist(), dtype=object)
    rng = np.random.default_rng(0)
    views = make_views(decoded["flux"], survey, "map2d", {}, rng, ViewConfig(n_local=2))
    views = [to_model_tensor("map2d", v) for v in views]
    torch.manual_seed(0)
    student = DINOModel("vit_tiny", TINY, SMALL_HEAD)
    teacher = DINOModel("vit_tiny", TINY, SMALL_HEAD)
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    loss_fn = DINOLoss(SMALL_HEAD.out_dim)
    optimizer = torch.optim.AdamW(param_groups(student), lr=1e-3)
    losses = []
    for _ in range(12):
        loss, teacher_out = dino_forward(student, teacher, loss_fn, views, 2, 0.04)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_update(teacher, student, 0.996)
        loss_fn.update_center(teacher_out)
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_linear_probe_separates_separable_features():
    from raysurvey.train.dino_probe import fit_linear

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    x = rng.normal(size=(120, 5)) + 4.0 * np.eye(3, 5)[y]  # class k shifted along axis k
    predict = fit_linear(x, y, 3)
    assert (predict(x).numpy() == y).mean() == 1.0
    assert (predict(np.eye(3, 5) * 4.0).numpy() == [0, 1, 2]).all()


def test_fine_tune_adopts_the_pretraining_encoding_unless_told_otherwise():
    from raysurvey.train.pretraining_encoding import adopt_pretraining_encoding

    encoding = {"map2d": {"variant": "normalised"}}
    merged, notes = adopt_pretraining_encoding({}, encoding)
    assert merged == {"map2d": {"variant": "normalised"}}
    assert notes == ["map2d.variant=normalised (as in pretraining)"]
    given = {"map2d": {"variant": "spectromer"}, "flux1d": {"median_filter": 9}}
    merged, notes = adopt_pretraining_encoding(given, encoding)
    assert merged == given  # the user's choice wins, and is reported
    assert notes == ["map2d.variant=spectromer overrides pretraining's normalised"]
    assert adopt_pretraining_encoding(given, None) == (given, [])


def test_pretraining_encoding_reads_dino_json_and_ignores_other_weights(tmp_path):
    from raysurvey.train.pretraining_encoding import PROVENANCE_FILE, pretraining_encoding

    config = {"model_config": {"modality": "map2d"}, "modality_options": {}}
    (tmp_path / PROVENANCE_FILE).write_text(json.dumps({"config": config}))
    assert pretraining_encoding(str(tmp_path)) == {"map2d": {}}
    config["modality_options"] = {"map2d": {"variant": "normalised"}, "simple": {"dpi": 1}}
    (tmp_path / PROVENANCE_FILE).write_text(json.dumps({"config": config}))
    assert pretraining_encoding(str(tmp_path)) == {"map2d": {"variant": "normalised"}}
    assert pretraining_encoding(str(tmp_path / "missing")) is None
    assert pretraining_encoding("facebook/dino-vitb16") is None  # a hub id: no dino.json


def test_relative_weight_directories_are_made_absolute_for_the_workers(tmp_path, monkeypatch):
    from raysurvey.train.run import with_absolute_weights

    (tmp_path / "backbone").mkdir()
    monkeypatch.chdir(tmp_path)
    config = {"modality": "map2d", "pretrained": "backbone"}
    assert with_absolute_weights(config) == config | {"pretrained": str(tmp_path / "backbone")}
    for source in ("facebook/dino-vitb16", "s3://bucket/backbone"):  # left to from_pretrained
        assert with_absolute_weights({"pretrained": source}) == {"pretrained": source}
    assert with_absolute_weights({"modality": "map2d"}) == {"modality": "map2d"}


# ----- the Ray Train job -----------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tiny_release, tmp_path_factory, ray_cluster) -> tuple[Path, Path]:
    """jobs/pretrain_dino.py for 2 epochs; the last worker dies once in epoch 2."""
    import pretrain_dino

    tmp = tmp_path_factory.mktemp("dino-run")
    out, marker = tmp / "backbone", tmp / "failed-once"
    args = ["--manifest", tiny_release, "--model", "vit_tiny", "--modality", "map2d"]
    args += ["--model-option", "hidden_size=32", "--model-option", "intermediate_size=64"]
    args += ["--epochs", "2", "--batch-size", "8", "--local-crops", "2", "--out-dim", "64"]
    args += ["--num-workers", "2", "--storage", str(tmp / "runs"), "--name", "dino"]
    args += ["--out", str(out), "--fail-at-epoch", "2", "--fail-marker", str(marker)]
    assert pretrain_dino.main(args) == 0
    return out, marker


@pytest.mark.slow
def test_killed_worker_resumes_from_the_checkpoint(pretrained):
    out, marker = pretrained
    assert marker.read_text() == "failed in epoch 2\n"
    provenance = json.loads((out / "dino.json").read_text())
    assert provenance["epoch"] == 2
    # map2d defaults to the scale-free variant for pretraining (pretraining_encoding.py says why)
    assert provenance["config"]["modality_options"] == {"map2d": {"variant": "normalised"}}
    assert provenance["last"]["resumed_at_epoch"] == 2  # epoch 1's checkpoint, not a restart
    assert np.isfinite(provenance["last"]["train_loss"])


@pytest.mark.slow
def test_pretrained_backbone_fine_tunes_into_a_bundle_that_classifies(
    pretrained, tiny_release, tmp_path
):
    import train
    from safetensors.torch import load_file
    from transformers import ViTModel

    from raysurvey.infer import ClassifyConfig, classify_release
    from raysurvey.models.bundle import load_bundle

    out, _ = pretrained
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    vit = ViTModel.from_pretrained(str(out), add_pooling_layer=False)
    assert vit.config.hidden_size == 32
    saved = load_file(str(out / "model.safetensors"))
    bundle = str(tmp_path / "bundle")
    args = ["--manifest", tiny_release, "--model", "vit_tiny", "--pretrained", str(out)]
    args += ["--labels", "class3", "--epochs", "1", "--batch-size", "8", "--balance-to", "0"]
    args += ["--num-workers", "2", "--storage", str(tmp_path / "runs"), "--name", "ft"]
    args += ["--cache-features", "--bundle-out", bundle]
    assert train.main(args) == 0
    loaded = load_bundle(bundle)
    assert loaded.model_config["initialised_from"] == str(out)
    assert loaded.metadata["initialised_from"] == str(out)
    assert loaded.model.config.hidden_size == 32
    assert loaded.modalities["map2d"]["variant"] == "normalised"  # adopted from dino.json
    from raysurvey.train.dino_probe import linear_probe

    probe = linear_probe(tiny_release, str(out), labels="class3")
    assert probe["options"] == {"variant": "normalised"}  # the probe draws as pretraining did
    assert probe["n_train"] > 0 and 0.0 <= probe["accuracy"] <= 1.0
    # fine-tuning started from the DINO weights: one epoch moves them, not replaces them
    key = "embeddings.patch_embeddings.projection.weight"
    tuned = loaded.model.backbone.state_dict()[key]
    assert torch.corrcoef(torch.stack([tuned.flatten(), saved[key].flatten()]))[0, 1] > 0.9
    catalog = str(tmp_path / "catalog")
    result = classify_release(tiny_release, [bundle], catalog, ClassifyConfig(chunk_size=30))
    assert result.rows_written == 60
    files = sorted(str(p) for p in Path(catalog).glob("part-*.parquet"))
    table = pads.dataset(files, format="parquet").to_table().to_pydict()
    assert set(table["pred_class"]) <= {"STAR", "GALAXY", "QSO"}
    assert all(s == "ok" for s in table["status"])


def test_the_vit_sweep_searches_the_pretraining():
    sys.path.insert(0, str(REPO_ROOT / "tune"))
    import sweep_vit

    from raysurvey.train.sweep import SweepSpec, _param_space

    found = sweep_vit.choices("vit_tiny", pretraining=("none", "/runs/dino-synth/"))
    by_name = {c.name: c for c in found}
    assert set(by_name) == {
        *sweep_vit.ENCODINGS,
        *(f"{e}+dino-synth" for e in sweep_vit.ENCODINGS),
    }
    assert "pretrained" not in by_name["map2d"].model_config
    assert by_name["map2d+dino-synth"].model_config == {
        "pretrained": "/runs/dino-synth/",
        "modality": "map2d",
    }
    spec = SweepSpec(
        name="s", storage="/tmp", manifest="m", choices=tuple(found), search={"lr": [1e-5, 1e-3]}
    )
    assert set(_param_space(spec)["choice"].categories) == set(by_name)
    # --pretrained alone: every choice from those weights, names unchanged (as before)
    old = sweep_vit.choices("vit", "facebook/dino-vitb16")
    assert [c.name for c in old] == list(sweep_vit.ENCODINGS)
    assert all(c.model_config["pretrained"] == "facebook/dino-vitb16" for c in old)
