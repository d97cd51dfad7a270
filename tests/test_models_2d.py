"""The 2D-spectrum models: MAC-Net / C-Net (macnet.py), RC-Net (rcnet.py), DRC-Net
(drcnet.py) and the 2D CBAM. Shapes at full size, parameter counts by hand, what each
model reads, shape errors, and short overfit runs of the tiny variants. Pure torch."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from raysurvey.models import MissingModalityError, create_model, example_inputs, run_model
from raysurvey.models.attention import ConvBlockAttention2d, get_attention
from raysurvey.models.drcnet import DimensionReduction, DRCNetConfig
from raysurvey.models.macnet import MacNetConfig, arm_feature_shape, photometric_feature_shape
from raysurvey.models.rcnet import ResidualBackbone, ResidualModule

BATCH = 2


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for this module: these models run many small ops, and on a
    shared 2-core machine two threads waiting on each other cost far more than they
    gain (measured while writing it: the overfit runs took ~1 s each on one thread,
    20-100 s on two while other jobs held the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, *kernel: int) -> int:
    """Weights + bias of a convolution."""
    k = 1
    for size in kernel:
        k *= size
    return c_in * c_out * k + c_out


def bn(c: int) -> int:
    return 2 * c  # BatchNorm affine weight and bias


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# ---------------------------------------------------------------- shapes at full size


@pytest.mark.parametrize(
    ("name", "modalities"),
    [
        ("macnet", {"stripes": (2, 11, 2000), "photometry": (3, 64, 64)}),
        ("cnet", {"stripes": (2, 11, 2000)}),
        ("drcnet", {"stripes": (2, 11, 3000)}),
        ("rcnet", {"flux1d": (1, 3700)}),
    ],
)
def test_full_size_output_shapes(name, modalities):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = example_inputs(model, BATCH)
    assert {k: tuple(v.shape[1:]) for k, v in x.items()} == modalities
    with torch.no_grad():
        logits = run_model(model, x)
    assert logits.shape == (BATCH, 3)  # galaxy/QSO/star (MAC-Net), F/G/K (DRC-Net, RC-Net)
    assert torch.isfinite(logits).all()


def test_embeddings_without_a_head_on_the_meta_device():
    with torch.device("meta"):
        for name, dim in [("macnet", 1024), ("cnet", 1024), ("drcnet", 64), ("rcnet", 128)]:
            model = create_model(name, num_classes=None)
            assert model.head is None and model.embed_dim == dim
            assert run_model(model, example_inputs(model, BATCH)).shape == (BATCH, dim)


def test_macnet_flatten_sizes_are_table_2s():
    config = MacNetConfig()
    assert arm_feature_shape(config) == (64, 1, 125)  # 1 x 8000 per arm
    assert photometric_feature_shape(config) == (64, 8, 8)  # 1 x 4096
    with torch.device("meta"):
        assert create_model("macnet").flat_dim == 20096  # "Concatenate (1 x 20096)"
        assert create_model("cnet").flat_dim == 16000


def test_drcnet_reduction_maps_a_stripe_to_one_row():
    torch.manual_seed(0)
    for reduction in ("channels", "spatial"):
        reduce = DimensionReduction(DRCNetConfig(reduction=reduction))
        assert reduce(torch.randn(BATCH, 11, 3000)).shape == (BATCH, 1, 3000)


def test_rcnet_backbone_gives_128():
    backbone = ResidualBackbone()
    assert backbone(torch.randn(BATCH, 1, 3000)).shape == (BATCH, 128)  # drcnet's arms
    assert backbone(torch.randn(BATCH, 1, 3700)).shape == (BATCH, 128)  # rcnet's flux


# ---------------------------------------------------------------- parameter counts


def hand_count_residual_module(c_in: int, c: int) -> int:
    # 1x1 skip + three 1x3 convs, each with BatchNorm
    return conv(c_in, c, 1) + conv(c_in, c, 3) + bn(c) + 2 * (conv(c, c, 3) + bn(c))


def test_residual_module_parameter_count():
    # (16 -> 32): skip 16*32 + 32 = 544; conv1 16*32*3 + 32 = 1568; conv2, conv3
    # 32*32*3 + 32 = 3104 each; three BatchNorms 3 * 64 = 192: 544 + 1568 + 6208 + 192
    assert n_params(ResidualModule(16, 32)) == 8512 == hand_count_residual_module(16, 32)


BACKBONE = 396_032  # sum of hand_count_residual_module over (1, 16, 16, 32, ..., 128)


def test_backbone_parameter_count():
    channels = (16, 16, 32, 32, 64, 64, 128, 128)
    widths = (1, *channels)
    total = sum(
        hand_count_residual_module(a, b) for a, b in zip(widths[:-1], channels, strict=True)
    )
    # 1760 + 2720 + 8512 + 10560 + 33408 + 41600 + 132352 + 165120
    assert total == BACKBONE == n_params(ResidualBackbone(channels))


REDUCTION = 649  # 11 rows as channels -> 8 -> 4 -> 1


def test_drcnet_reduction_parameter_counts():
    # channels: conv 11->8 k5 (11*8*5 + 8 = 448) + BN 16, conv 8->4 k5 (164) + BN 8,
    # conv 4->1 k3 (13): 448 + 16 + 164 + 8 + 13 = 649
    hand = conv(11, 8, 5) + bn(8) + conv(8, 4, 5) + bn(4) + conv(4, 1, 3)
    assert hand == REDUCTION == n_params(DimensionReduction(DRCNetConfig()))
    # spatial: conv 1->8 (5x1) 48 + BN 16, conv 8->4 (5x1) 164 + BN 8, conv 4->1 (3x1) 13
    hand = conv(1, 8, 5, 1) + bn(8) + conv(8, 4, 5, 1) + bn(4) + conv(4, 1, 3, 1)
    assert hand == 249 == n_params(DimensionReduction(DRCNetConfig(reduction="spatial")))


def hand_count_macnet_arm(cbam: bool) -> int:
    # conv 3x20: 1->128, 128->64, 64->64, 64->64, each + BN; CBAM(64, r=16) after block 3
    widths = (1, 128, 64, 64, 64)
    total = sum(conv(a, b, 3, 20) + bn(b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert total == 991_680  # 8064 + 491712 + 245952 + 245952, BatchNorms included
    cbam_params = linear(64, 4) + linear(4, 64) + 2 * 7 * 7  # shared MLP, bias-free 7x7 conv
    return total + (cbam_params if cbam else 0)  # CBAM: 260 + 320 + 98 = 678


def hand_count_photometric() -> int:
    stem = conv(3, 64, 7, 7) + conv(64, 64, 1, 1) + conv(64, 192, 3, 3)  # 9472 + 4160 + 110784
    inception = (
        conv(192, 16, 1, 1)  # 1x1
        + conv(192, 24, 1, 1)
        + conv(24, 32, 3, 3)  # 1x1 -> 3x3
        + conv(192, 4, 1, 1)
        + conv(4, 8, 5, 5)  # 1x1 -> 5x5
        + conv(192, 8, 1, 1)  # pool projection
    )
    assert inception == 17_788
    return stem + inception  # LRN and max-pools have no parameters


MACNET = 88_642_635
CNET = 71_721_859
DRCNET = 1_335_509
RCNET = 396_419


def test_full_size_parameter_counts():
    with torch.device("meta"):
        counts = {name: n_params(create_model(name)) for name in ("macnet", "cnet", "drcnet")}
        counts["rcnet"] = n_params(create_model("rcnet"))
        spatial = n_params(create_model("drcnet", reduction="spatial"))
    dense = linear(4096, 1024) + linear(1024, 3)  # 4,195,328 + 3075
    macnet = 2 * hand_count_macnet_arm(True) + hand_count_photometric()
    macnet += linear(8000 + 8000 + 4096, 4096) + dense  # 82,317,312: most of the model
    cnet = 2 * hand_count_macnet_arm(False) + linear(16000, 4096) + dense
    fusion = conv(2, 16, 3) + bn(16) + conv(16, 16, 3) + bn(16)  # 960
    classifier = linear(16 * 128, 256) + linear(256, 64) + linear(64, 3)
    drcnet = 2 * (REDUCTION + BACKBONE) + fusion + classifier
    rcnet = BACKBONE + linear(128, 3)
    assert (macnet, cnet, drcnet, rcnet) == (MACNET, CNET, DRCNET, RCNET)
    assert counts == {"macnet": MACNET, "cnet": CNET, "drcnet": DRCNET, "rcnet": RCNET}
    assert spatial == DRCNET - 2 * (649 - 249)


# ---------------------------------------------------------------- what each model reads


def test_cnet_has_no_photometry_and_needs_none():
    torch.manual_seed(0)
    with torch.device("meta"):
        cnet = create_model("cnet")
    assert cnet.modalities == ("stripes",) and not cnet.takes_dict
    assert cnet.photometric is None
    assert not [n for n, _ in cnet.named_parameters() if "photometric" in n or "mlp" in n]
    tiny = create_model("cnet_tiny").eval()
    x = example_inputs(tiny, BATCH)
    assert set(x) == {"stripes"}
    photometry = torch.rand(BATCH, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        alone = run_model(tiny, x)
        torch.testing.assert_close(tiny(x["stripes"]), alone, rtol=0, atol=0)
        with_photometry = tiny({"stripes": x["stripes"], "photometry": photometry})
    torch.testing.assert_close(with_photometry, alone, rtol=0, atol=0)  # never read


def test_macnet_output_depends_on_photometry():
    torch.manual_seed(0)
    model = create_model("macnet_tiny").eval()
    assert model.modalities == ("stripes", "photometry") and model.takes_dict
    x = example_inputs(model, BATCH)
    with torch.no_grad():
        before = run_model(model, x)
        after = run_model(model, x | {"photometry": -x["photometry"]})
    assert not torch.allclose(before, after)
    with pytest.raises(MissingModalityError, match="'photometry'"):
        model({"stripes": x["stripes"]})
    with pytest.raises(MissingModalityError, match="'photometry'"):
        model(x["stripes"])


def test_macnet_blue_and_red_arms_have_their_own_weights():
    model = create_model("macnet_tiny")
    assert model.blue is not model.red
    blue, red = model.blue.state_dict(), model.red.state_dict()
    assert blue.keys() == red.keys()
    assert not torch.equal(blue["layers.1.weight"], red["layers.1.weight"])


# ---------------------------------------------------------------- shape errors


@pytest.mark.parametrize(
    ("name", "inputs", "expected"),
    [
        ("macnet", {"stripes": (2, 11, 1999), "photometry": (3, 64, 64)}, "[B, 2, 11, 2000]"),
        ("macnet", {"stripes": (2, 11, 2000), "photometry": (3, 32, 32)}, "[B, 3, 64, 64]"),
        ("cnet", {"stripes": (1, 11, 2000)}, "[B, 2, 11, 2000]"),
        ("drcnet", {"stripes": (2, 11, 2000)}, "[B, 2, 11, 3000]"),
        ("drcnet", {"stripes": (2, 15, 3000)}, "[B, 2, 11, 3000]"),
        ("rcnet", {"flux1d": (1, 3000)}, "[B, 1, 3700]"),
    ],
)
def test_wrong_input_shape_names_the_expected_shape(name, inputs, expected):
    with torch.device("meta"):
        model = create_model(name)
        x = {k: torch.empty(BATCH, *shape) for k, shape in inputs.items()}
        with pytest.raises(ValueError, match=f"{name} expects .*{re.escape(expected)}"):
            run_model(model, x)


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown reduction 'pca'"):
        create_model("drcnet", reduction="pca")
    with pytest.raises(ValueError, match="takes 15 rows to 5, not 1"):
        create_model("drcnet", reduction="spatial", stripe_rows=15)
    with pytest.raises(ValueError, match="too short"):
        create_model("rcnet", input_length=200)
    with pytest.raises(ValueError, match="cbam_after"):
        create_model("macnet", cbam_after=5)


# ---------------------------------------------------------------- 2D CBAM


def test_cbam_2d_on_a_one_row_map_is_the_1d_module():
    """On [B, C, 1, L] only the middle row of the 7x7 spatial kernel sees data."""
    torch.manual_seed(0)
    cbam2d = ConvBlockAttention2d(64).eval()
    cbam1d = get_attention("cbam", 64).eval()
    state = cbam2d.state_dict()
    state["spatial.weight"] = state["spatial.weight"][:, :, 3, :]
    cbam1d.load_state_dict(state)
    x = torch.randn(2, 64, 1, 250)
    with torch.no_grad():
        out = cbam2d(x)
        torch.testing.assert_close(out.squeeze(2), cbam1d(x.squeeze(2)))
    assert cbam2d(torch.randn(2, 64, 3, 50)).shape == (2, 64, 3, 50)


# ---------------------------------------------------------------- overfit on CPU


# Narrow inputs keep each run near a second on one CPU core: the tiny variants take the
# full 11 x 2000 / 11 x 3000 stripes by default, where a step costs ~10x more. MAC-Net's
# dropout 0.5 is switched off so the training loss can reach zero.
OVERFIT = [
    ("macnet_tiny", {"stripe_width": 256, "dropout": 0.0}),
    ("cnet_tiny", {"stripe_width": 256, "dropout": 0.0}),
    ("drcnet_tiny", {"stripe_width": 256}),
    ("drcnet_tiny", {"stripe_width": 256, "reduction": "spatial"}),
    ("rcnet", {"input_length": 1024}),
]


@pytest.mark.parametrize(("name", "options"), OVERFIT)
def test_tiny_model_overfits_16_examples(name, options):
    """Loss near zero on 16 fixed examples (3 classes: prototype + noise) in < 40 steps."""
    torch.manual_seed(0)
    model = create_model(name, **options)
    y = torch.arange(16) % 3
    prototypes, noise = example_inputs(model, 3, seed=1), example_inputs(model, 16, seed=2)
    x = {k: prototypes[k][y] + 0.3 * noise[k] for k in prototypes}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(run_model(model, x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if loss.item() < 0.05:
            break
    assert losses[-1] < 0.05, f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
