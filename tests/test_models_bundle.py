"""Model bundles: round trips through local dirs and S3, provenance, refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from raysurvey.models import create_model, example_inputs, list_models, run_model
from raysurvey.models.bundle import BundleError, load_bundle, read_manifest, save_bundle


def labels_for(model: nn.Module) -> list[str]:
    return [f"class{i}" for i in range(model.head.out_features)]


# Full-size models whose round trip is their tiny variant's (same class and code path):
# MAC-Net's 20096 x 4096 dense layer alone is 330 MB to hash, write and read back.
ROUND_TRIP_BY_TINY = {"macnet": "macnet_tiny", "cnet": "cnet_tiny"}


@pytest.mark.parametrize("name", [n for n in list_models() if n not in ROUND_TRIP_BY_TINY])
def test_round_trip_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    uri = str(tmp_path / "bundle")
    version = save_bundle(model, uri, labels=["STAR", "GALAXY", "QSO"], metadata={"run_id": "r1"})
    bundle = load_bundle(uri)
    assert bundle.version == version and len(version) == 16
    assert bundle.model_name == name and bundle.labels == ["STAR", "GALAXY", "QSO"]
    assert bundle.metadata == {"run_id": "r1"}
    assert not bundle.model.training
    x = example_inputs(model, 2)
    with torch.no_grad():
        torch.testing.assert_close(run_model(bundle.model, x), run_model(model, x), rtol=0, atol=0)


def test_s3_round_trip(s3_bucket):
    model = create_model("fusion_tiny", num_classes=3).eval()
    uri = f"{s3_bucket}/runs/demo/best"
    save_bundle(model, uri, labels=["STAR", "GALAXY", "QSO"])
    bundle = load_bundle(uri)
    x = example_inputs(model, 2)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), model(x), rtol=0, atol=0)
    assert bundle.modalities == {"flux1d": {}, "simple": {}, "mel": {"variant": "code"}}


def test_version_depends_on_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = create_model("image_cnn", num_classes=2)
    a = save_bundle(model, str(tmp_path / "a"), labels=["x", "y"])
    b = save_bundle(model, str(tmp_path / "b"), labels=["x", "y"])
    c = save_bundle(model, str(tmp_path / "c"), labels=["y", "x"])
    with torch.no_grad():
        model.head.bias.add_(1.0)
    d = save_bundle(model, str(tmp_path / "d"), labels=["x", "y"])
    assert a == b  # same weights and metadata: same version, whenever written
    assert len({a, c, d}) == 3


def test_regression_bundle_keeps_targets_and_normalisation(tmp_path):
    model = create_model("vit_tiny", num_classes=4)
    norm = {"mean": [5000.0, 4.0, -0.5, 0.1], "std": [900.0, 0.8, 0.4, 0.2]}
    save_bundle(
        model,
        str(tmp_path / "b"),
        labels=["teff", "logg", "feh", "z"],
        task="stellar_params",
        target_normalisation=norm,
    )
    bundle = load_bundle(str(tmp_path / "b"))
    assert bundle.task == "stellar_params" and bundle.target_normalisation == norm
    assert bundle.modalities == {"map2d": {}}


def test_unwraps_ddp_style_wrappers(tmp_path):
    class Wrapper(nn.Module):  # what prepare_model's DistributedDataParallel looks like
        def __init__(self, module):
            super().__init__()
            self.module = module

    model = create_model("image_cnn", num_classes=2)
    save_bundle(Wrapper(model), str(tmp_path / "b"), labels=["a", "b"])
    bundle = load_bundle(str(tmp_path / "b"))
    assert set(bundle.model.state_dict()) == set(model.state_dict())


def test_vit_bundle_loads_without_its_pretrained_source(tmp_path):
    create_model("vit_tiny").backbone.save_pretrained(tmp_path / "pretrained")
    model = create_model("vit_tiny", num_classes=3, pretrained=str(tmp_path / "pretrained"))
    save_bundle(model.eval(), str(tmp_path / "b"), labels=["STAR", "GALAXY", "QSO"])
    shutil.rmtree(tmp_path / "pretrained")
    bundle = load_bundle(str(tmp_path / "b"))
    assert bundle.model_config["initialised_from"] == str(tmp_path / "pretrained")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), model(x), rtol=0, atol=0)


def test_refusals_name_the_bundle_and_reason(tmp_path):
    model = create_model("image_cnn", num_classes=2)
    uri = str(tmp_path / "b")
    with pytest.raises(BundleError, match="2 outputs but 3 labels"):
        save_bundle(model, uri, labels=["a", "b", "c"])
    with pytest.raises(BundleError, match="unknown task"):
        save_bundle(model, uri, labels=["a", "b"], task="segment")
    with pytest.raises(BundleError, match="does not read"):
        save_bundle(model, uri, labels=["a", "b"], modalities={"mel": {}})
    with pytest.raises(BundleError, match="registered name"):
        save_bundle(nn.Linear(2, 2), uri, labels=["a", "b"])
    save_bundle(model, uri, labels=["a", "b"])
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(model, uri, labels=["a", "b"])
    save_bundle(model, uri, labels=["a", "b"], overwrite=True)

    with pytest.raises(BundleError, match=r"no bundle\.json"):
        load_bundle(str(tmp_path / "nothing"))
    weights = tmp_path / "b" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{tmp_path / 'b'}.*checksum"):
        load_bundle(uri)
    weights.unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(uri)


def test_refuses_newer_formats(tmp_path):
    model = create_model("image_cnn", num_classes=2)
    save_bundle(model, str(tmp_path / "b"), labels=["a", "b"])
    manifest_path = tmp_path / "b" / "bundle.json"
    manifest = json.loads(manifest_path.read_text())
    assert read_manifest(str(tmp_path / "b"))["parameters"] == sum(
        p.numel() for p in model.parameters()
    )
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="upgrade raysurvey"):
        load_bundle(str(tmp_path / "b"))


def test_cli_lists_models_and_describes_bundles(tmp_path, capsys):
    from raysurvey.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fusion           68,345,989  flux1d, line512, mel, mfcc, lfcc" in out
    model = create_model("audio_cnn", feature="lfcc", num_classes=2)
    save_bundle(model, str(tmp_path / "b"), labels=["G", "K"], metadata={"run_id": "r7"})
    assert main(["bundle-info", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "model    audio_cnn (6,382,274 parameters)" in out
    assert "reads    lfcc (variant=code)" in out
    assert "meta     run_id: r7" in out
