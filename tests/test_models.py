"""Model zoo: every registered model (forward, backward, eval determinism), parameter
counts of the full-size models on the meta device, attention modules, fusion inputs,
ViT loading, and short overfit runs of the tiny variants."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from raysurvey.models import (
    ATTENTIONS,
    MissingModalityError,
    create_model,
    example_inputs,
    get_attention,
    list_models,
    prepare_inputs,
    run_model,
)
from raysurvey.models._registry import config_dict
from raysurvey.models.attention import eca_kernel_size

BATCH = 2


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- every registered model


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_eval_determinism(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    x = example_inputs(model, BATCH)
    out = run_model(model, x)
    assert out.shape == (BATCH, 5)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    model.eval()
    with torch.no_grad():
        a, b = run_model(model, x), run_model(model, x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", list_models())
def test_config_survives_json_and_rebuilds(name):
    with torch.device("meta"):
        model = create_model(name)
        config = json.loads(json.dumps(config_dict(model)))
        again = create_model(name, **config)
    assert again.config == model.config
    assert n_params(again) == n_params(model)


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        create_model("resnet")
    with pytest.raises(TypeError, match="'kernel'"):
        create_model("spec_cnn", kernel=3)
    with pytest.raises(ValueError, match="unknown attention 'sa'"):
        create_model("spec_cnn", attention="sa")


# ---------------------------------------------------------------- parameter counts


def hand_count_spec_cnn(attention_params: int, num_classes: int = 8) -> int:
    kernels = (1, 2, 3, 4, 5, 7, 8, 9)
    channels = (10, 10, 20, 30, 40, 50, 60, 60)
    total, c_in = 0, 1
    for k, c in zip(kernels, channels, strict=True):
        total += c_in * c * k + c + 2 * c  # conv weight + bias, BatchNorm affine
        c_in = c
    total += 13140 * 1024 + 1024 + 1024 * 256 + 256 + 256 * num_classes + num_classes
    return total + attention_params


# Attention parameters at 60 channels, counted by hand from each module's layers.
SPEC_CNN_ATTENTION_PARAMS = {
    "none": 0,
    "se": 60 * 3 * 2,  # bias-free 60 -> 3 -> 60
    "eca": 3,  # one bias-free conv of kernel 3
    "bam": (60 * 3 + 3) + 6 + (3 * 60 + 60) + (60 * 3 + 3) + 6 + 2 * (3 * 3 * 3 + 3 + 6) + 4,
    "gct": 3 * 60,  # alpha, gamma, beta
    "coord": (60 * 8 + 8) + 16 + 2 * (8 * 60 + 60),
    "criss_cross": 2 * (60 * 7 + 7) + (60 * 60 + 60) + 1,
    "cbam": (60 * 3 + 3) + (3 * 60 + 60) + 2 * 7,
}


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_spec_cnn_parameter_counts(attention):
    with torch.device("meta"):
        model = create_model("spec_cnn", attention=attention)
    assert n_params(model) == hand_count_spec_cnn(SPEC_CNN_ATTENTION_PARAMS[attention])


def test_full_size_parameter_counts():
    with torch.device("meta"):
        epsanet = create_model("epsanet50", num_classes=1000)
        vit = create_model("vit")
        fusion = create_model("fusion")
        audio = {
            f: create_model("audio_cnn", feature=f, num_classes=None)
            for f in "mel mfcc lfcc".split()
        }
    assert abs(n_params(epsanet) - 22.56e6) / 22.56e6 < 0.01  # published EPSANet-50 (small)
    assert n_params(vit.backbone) == 85_798_656  # ViT-B/16 without pooler
    assert abs(n_params(fusion) - 68e6) / 68e6 < 0.01  # the authors' full model, "68 M"
    # the authors hard-coded these flatten sizes for the code variant's features
    assert [m.flat_dim for m in audio.values()] == [15360, 10304, 5824]
    assert fusion.branches["flux1d"].flat_dim == 60 * 219


# ---------------------------------------------------------------- attention modules


def perturb(module: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("name", ATTENTIONS)
def test_attention_keeps_shape_and_depends_on_weights(name):
    torch.manual_seed(0)
    module = get_attention(name, 60).eval()
    x = torch.randn(3, 60, 219)
    with torch.no_grad():
        before = module(x)
    assert before.shape == x.shape
    if name == "none":
        assert torch.equal(before, x)
        return
    perturb(module)
    with torch.no_grad():
        after = module(x)
    assert not torch.allclose(before, after)


def test_eca_kernel_size_follows_the_paper():
    # k = |log2(C)/2 + 1/2| made odd
    # 16: 2.5 -> 3; 64: 3.5 -> 3; 256: 4.5 -> 4 -> 5; 512: 5.0 -> 5
    assert [eca_kernel_size(c) for c in (16, 60, 64, 256, 512)] == [3, 3, 3, 5, 5]


def test_gct_and_criss_cross_start_as_identity():
    x = torch.randn(2, 60, 50)
    for name in ("gct", "criss_cross"):
        with torch.no_grad():
            assert torch.allclose(get_attention(name, 60).eval()(x), x)


def test_se_matches_hand_computation():
    se = get_attention("se", 4, reduction=2)
    with torch.no_grad():
        se.fc1.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        se.fc2.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0], [-1.0, 0]]))
    x = torch.tensor([[[1.0, 3.0], [-2.0, -2.0], [0.0, 0.0], [5.0, 5.0]]])  # (1, 4, 2)
    means = torch.tensor([2.0, 0.0])  # relu(fc1(mean over L)) = relu([2, -2])
    gate = torch.sigmoid(torch.tensor([means[0], means[1], means.sum(), -means[0]]))
    torch.testing.assert_close(se(x), x * gate.view(1, 4, 1))


def test_coord_attention_is_the_2d_module_on_an_h1_map():
    """The 1D reading equals Hou et al.'s 2D computation on [B, C, 1, L]."""
    torch.manual_seed(0)
    module = get_attention("coord", 60).eval()
    perturb(module)
    x = torch.randn(2, 60, 219)
    x2 = x.unsqueeze(2)  # (B, C, H=1, W=L)
    w2 = {k: v.unsqueeze(-1) if v.dim() == 3 else v for k, v in module.state_dict().items()}
    x_h = x2.mean(dim=3, keepdim=True)  # pool along W: (B, C, 1, 1)
    x_w = x2.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)  # pool along H: (B, C, W, 1)
    y = torch.nn.functional.conv2d(torch.cat([x_h, x_w], 2), w2["conv1.weight"], w2["conv1.bias"])
    y = torch.nn.functional.batch_norm(
        y, w2["bn1.running_mean"], w2["bn1.running_var"], w2["bn1.weight"], w2["bn1.bias"]
    )
    y = torch.nn.functional.hardswish(y)
    y_h, y_w = torch.split(y, [1, 219], dim=2)
    a_h = torch.sigmoid(torch.nn.functional.conv2d(y_h, w2["conv_h.weight"], w2["conv_h.bias"]))
    a_w = torch.sigmoid(
        torch.nn.functional.conv2d(y_w.permute(0, 1, 3, 2), w2["conv_w.weight"], w2["conv_w.bias"])
    )
    expected = (x2 * a_w * a_h).squeeze(2)
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected)


# ---------------------------------------------------------------- inputs and fusion


def test_fusion_missing_modality_is_an_error_naming_it():
    model = create_model("fusion_tiny").eval()
    x = example_inputs(model, 2)
    del x["mel"]
    with pytest.raises(MissingModalityError, match="'mel'"):
        model(x)
    with pytest.raises(MissingModalityError, match="'mel'"):
        prepare_inputs({"flux1d": None, "simple": None}, model.modalities)


def test_fusion_branches_follow_modalities():
    with torch.device("meta"):
        model = create_model("fusion", modalities=("flux1d", "map2d", "mfcc"), image_encoder="vit")
    assert list(model.branches) == ["flux1d", "map2d", "mfcc"]
    assert model.branches["map2d"].model_name == "vit"
    assert model.branches["flux1d"].config.attention == "coord"
    assert set(model.projections) == {"map2d"}  # 768 -> 256; spec_cnn/audio_cnn end at 256
    assert model.head.in_features == 3 * 256
    with pytest.raises(ValueError, match="no branch for"):
        create_model("fusion", modalities=("flux1d", "stripes"))


def test_prepare_inputs_layouts():
    import numpy as np

    batch = {
        "flux1d": np.zeros((2, 3700), np.float32),
        "map2d": np.full((2, 224, 224, 3), 255, np.uint8),
        "mel": np.ones((2, 64, 62), np.float32),
    }
    x = prepare_inputs(batch, ("flux1d", "map2d", "mel"))
    assert x["flux1d"].shape == (2, 1, 3700)
    assert x["map2d"].shape == (2, 3, 224, 224) and x["map2d"].dtype == torch.float32
    assert float(x["map2d"].max()) == 1.0
    assert x["mel"].shape == (2, 1, 64, 62)


# ---------------------------------------------------------------- ViT loading


def test_vit_from_pretrained_local_dir_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    source = create_model("vit_tiny", num_classes=4).eval()
    source.backbone.save_pretrained(tmp_path / "tiny-vit")
    loaded = create_model("vit_tiny", num_classes=4, pretrained=str(tmp_path / "tiny-vit"))
    loaded.head.load_state_dict(source.head.state_dict())
    loaded.eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)
    assert loaded.config.pretrained is None
    assert loaded.config.initialised_from == str(tmp_path / "tiny-vit")


def test_vit_takes_the_checkpoint_architecture(tmp_path):
    """A pretrained dir of another size wins over the variant's defaults."""
    create_model("vit_tiny", hidden_size=32, num_attention_heads=2).backbone.save_pretrained(
        tmp_path / "v"
    )
    model = create_model("vit_tiny", pretrained=str(tmp_path / "v"))
    assert model.config.hidden_size == 32 and model.head.in_features == 32


def test_vit_normalises_inputs_with_mean_std_half():
    model = create_model("vit_tiny").eval()
    seen = {}

    def record(module, args, kwargs):
        seen["x"] = kwargs["pixel_values"]

    model.backbone.register_forward_pre_hook(record, with_kwargs=True)
    with torch.no_grad():
        model(torch.ones(1, 3, 224, 224))
    assert torch.equal(seen["x"], torch.ones(1, 3, 224, 224))  # (1 - 0.5) / 0.5


# ---------------------------------------------------------------- overfit on CPU

TINY = ["spec_cnn", "audio_cnn", "image_cnn", "epsanet_tiny", "vit_tiny", "fusion_tiny"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY)
def test_tiny_model_overfits_32_examples(name):
    """Loss near zero on 32 fixed examples (4 classes: prototype + noise) in < 60 steps."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=4)
    y = torch.arange(32) % 4
    prototypes, noise = example_inputs(model, 4, seed=1), example_inputs(model, 32, seed=2)
    x = {k: prototypes[k][y] + 0.3 * noise[k] for k in prototypes}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(run_model(model, x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if loss.item() < 0.05:
            break
    assert losses[-1] < 0.05, f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
