"""macnet: MAC-Net, a classifier of 2D spectra (blue and red arm) and a photometric image.

Paper: ../shared/papers/macnet-2d-spectrum-photometry.txt, Zhang et al. 2023, "A
multimodal celestial object classification network based on 2D spectrum and
photometric image" (RAS Techniques and Instruments 2, 408). Galaxy / QSO / star.

Follows the paper's Table 2 and section 3.1:
- two arm branches of the same layout with their own weights, each four blocks of
  Conv2d 3 x 20 (128, 64, 64, 64 channels) + BatchNorm + ReLU + max-pool 2 x 2 +
  dropout 0.5, with CBAM (Woo et al. 2018) after the third block; flatten 1 x 8000;
- a photometric branch on the 64 x 64 gri cutout (Lupton RGB in [-1, 1]): conv 7 x 7
  (64), max-pool 3 x 3, LRN, conv 1 x 1 (64), conv 3 x 3 (192), LRN, max-pool 3 x 3,
  an inception module, flatten 1 x 4096 (the final average pool of GoogLeNet removed,
  as the paper says);
- concatenate 8000 + 8000 + 4096 = 20096 -> dense 4096 -> dropout 0.5 -> dense 1024
  -> dense 3 (the head).

Chosen where the paper is silent (each is a config field, commented there):
- "same" padding of the 3 x 20 convolutions and max-pools that keep the last odd
  row/column (Keras ``padding="same"``; the authors used Keras 2.6): the only reading
  that gives Table 2's 1 x 8000 flatten (64 channels x 1 row x 125 columns from
  11 x 2000: rows 11 -> 6 -> 3 -> 2 -> 1, columns 2000 -> 1000 -> 500 -> 250 -> 125).
  With valid convolutions the 11 rows would not survive the third block.
- GoogLeNet's strides in the photometric stem (conv 7 x 7 stride 2, max-pools 3 x 3
  stride 2): 64 -> 32 -> 16 -> 8, so the inception module works on 192 x 8 x 8 and must
  output 64 channels for Table 2's 1 x 4096. Its paths are GoogLeNet's inception (3a)
  scaled by 1/4: 1 x 1 (16), 1 x 1 (24) -> 3 x 3 (32), 1 x 1 (4) -> 5 x 5 (8), max-pool
  3 x 3 -> 1 x 1 (8), each convolution followed by ReLU. The paper calls its module
  "improved" without saying how; this is the plain one.
- ReLU after every convolution and after the two hidden dense layers (the paper's
  activation, section 3.2); LRN with GoogLeNet's size 5, alpha 1e-4, beta 0.75; CBAM
  reduction 16 (its paper's default) with a 7 x 7 spatial convolution (the paper's).

``cnet`` is the paper's C-Net (section 4.2): "exactly the same as our MAC-Net with
only the first two branches and the CBAM module removed". MC-Net (MAC-Net without
CBAM) is ``create_model("macnet", cbam=False)``. ``macnet_tiny`` / ``cnet_tiny`` take
the same inputs with narrow layers, for tests and smoke runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from raysurvey.models._registry import build_config, register_model
from raysurvey.models.attention import ConvBlockAttention2d
from raysurvey.models.inputs import MissingModalityError


@dataclass(frozen=True)
class MacNetConfig:
    """Defaults are the paper's Table 2; the comments mark what we chose."""

    num_classes: int | None = 3  # galaxy / QSO / star; None: output the 1024-d embedding
    stripe_rows: int = 11  # the 11 central rows of a fibre's stripe
    stripe_width: int = 2000  # blue columns 1000-3000, red 1500-3500 (the paper's windows)
    cutout_size: int = 64
    use_photometry: bool = True  # False: C-Net's two arm branches only
    cbam: bool = True  # False: MC-Net (and C-Net)
    # arm branches: conv 3 x 20 ("same" padding: chosen, see the module docstring)
    arm_channels: tuple[int, ...] = (128, 64, 64, 64)
    arm_kernel: tuple[int, int] = (3, 20)
    cbam_after: int = 3  # CBAM after this block (Table 2)
    cbam_reduction: int = 16  # chosen: Woo et al.'s default
    dropout: float = 0.5  # after every arm block and after dense 1
    # photometric branch: conv 7 x 7, conv 1 x 1, conv 3 x 3 widths (Table 2); the
    # strides (2, then 3 x 3 pools of stride 2) are GoogLeNet's (chosen)
    stem_channels: tuple[int, int, int] = (64, 64, 192)
    # inception paths (chosen: GoogLeNet 3a / 4): 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5,
    # pool projection; 16 + 32 + 8 + 8 = 64 channels x 8 x 8 = Table 2's 4096
    inception_channels: tuple[int, int, int, int, int, int] = (16, 24, 32, 4, 8, 8)
    dense_dims: tuple[int, ...] = (4096, 1024)  # then the head (Table 2)

    def __post_init__(self):
        if not self.arm_channels:
            raise ValueError("arm_channels needs at least one block")
        if self.cbam and not 1 <= self.cbam_after <= len(self.arm_channels):
            raise ValueError(f"cbam_after must be in 1..{len(self.arm_channels)}")
        if len(self.arm_kernel) != 2 or len(self.stem_channels) != 3:
            raise ValueError("arm_kernel needs 2 sizes and stem_channels 3 widths")
        if len(self.inception_channels) != 6:
            raise ValueError("inception_channels needs 6 widths (1x1, 3x3r, 3x3, 5x5r, 5x5, pool)")
        if not self.dense_dims:
            raise ValueError("dense_dims needs at least one layer")


def _ceil_half(n: int) -> int:
    return -(-n // 2)  # a 2 x 2 max-pool that keeps the last odd row/column


def _pool3(n: int) -> int:
    return -(-(n - 3) // 2) + 1  # max-pool 3, stride 2, ceil mode (GoogLeNet)


def same_padding(kh: int, kw: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that keeps the size (Keras "same")."""
    return (kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2


def arm_feature_shape(config: MacNetConfig) -> tuple[int, int, int]:
    """(channels, rows, columns) after an arm branch: (64, 1, 125) for Table 2."""
    rows, columns = config.stripe_rows, config.stripe_width
    for _ in config.arm_channels:
        rows, columns = _ceil_half(rows), _ceil_half(columns)
    return config.arm_channels[-1], rows, columns


def photometric_feature_shape(config: MacNetConfig) -> tuple[int, int, int]:
    """(channels, height, width) after the inception module: (64, 8, 8) by default."""
    size = (config.cutout_size + 2 * 3 - 7) // 2 + 1  # conv 7 x 7, stride 2, padding 3
    if size < 3:
        raise ValueError(f"cutout_size {config.cutout_size} is too small")
    size = _pool3(_pool3(size))
    c1, _, c3, _, c5, cp = config.inception_channels
    return c1 + c3 + c5 + cp, size, size


class ArmBranch(nn.Module):
    """One arm: [B, 1, rows, W] -> blocks of conv 3 x 20 + BN + ReLU + pool + dropout."""

    def __init__(self, config: MacNetConfig):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for i, out_channels in enumerate(config.arm_channels, start=1):
            layers += [
                nn.ZeroPad2d(same_padding(*config.arm_kernel)),  # Keras "same": extra on the right
                nn.Conv2d(in_channels, out_channels, config.arm_kernel),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
                nn.Dropout(config.dropout),
            ]
            if config.cbam and i == config.cbam_after:
                layers.append(ConvBlockAttention2d(out_channels, config.cbam_reduction))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, 64, 1, 125)


class Inception(nn.Module):
    """GoogLeNet's inception module: 1x1, 1x1 -> 3x3, 1x1 -> 5x5, pool -> 1x1, concatenated."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        c1, c3r, c3, c5r, c5, cp = widths
        relu = nn.ReLU
        self.path1 = nn.Sequential(nn.Conv2d(in_channels, c1, 1), relu())
        self.path3 = nn.Sequential(
            nn.Conv2d(in_channels, c3r, 1), relu(), nn.Conv2d(c3r, c3, 3, padding=1), relu()
        )
        self.path5 = nn.Sequential(
            nn.Conv2d(in_channels, c5r, 1), relu(), nn.Conv2d(c5r, c5, 5, padding=2), relu()
        )
        self.pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(in_channels, cp, 1), relu()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        paths = (self.path1, self.path3, self.path5, self.pool)
        return torch.cat([p(x) for p in paths], dim=1)  # (B, c1 + c3 + c5 + cp, H, W)


class PhotometricBranch(nn.Module):
    """[B, 3, 64, 64] -> GoogLeNet stem (7x7/2, pool, LRN, 1x1, 3x3, LRN, pool) -> inception."""

    def __init__(self, config: MacNetConfig):
        super().__init__()
        c1, c2, c3 = config.stem_channels
        self.layers = nn.Sequential(
            nn.Conv2d(3, c1, 7, stride=2, padding=3),  # (B, 64, 32, 32)
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (B, 64, 16, 16)
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.Conv2d(c1, c2, 1),
            nn.ReLU(),
            nn.Conv2d(c2, c3, 3, padding=1),  # (B, 192, 16, 16)
            nn.ReLU(),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (B, 192, 8, 8)
            Inception(c3, config.inception_channels),  # (B, 64, 8, 8)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MacNet(nn.Module):
    """Blue arm, red arm (and photometry) -> flatten, concatenate -> dense -> classes.

    Takes a dict keyed by modality (``stripes`` [B, 2, rows, W] with the arm axis blue
    then red; ``photometry`` [B, 3, 64, 64]); without photometry (C-Net) the stripes
    tensor alone also works.
    """

    def __init__(self, config: MacNetConfig):
        super().__init__()
        self.config = config
        self.modalities = ("stripes", "photometry") if config.use_photometry else ("stripes",)
        self.takes_dict = config.use_photometry
        self.blue = ArmBranch(config)
        self.red = ArmBranch(config)
        c, h, w = arm_feature_shape(config)
        self.flat_dim = 2 * c * h * w  # 2 x 8000
        self.photometric = None
        if config.use_photometry:
            self.photometric = PhotometricBranch(config)
            c, h, w = photometric_feature_shape(config)
            self.flat_dim += c * h * w  # + 4096 = 20096
        dense: list[nn.Module] = []
        in_features = self.flat_dim
        for i, out_features in enumerate(config.dense_dims):
            dense += [nn.Linear(in_features, out_features), nn.ReLU()]
            if i == 0:
                dense.append(nn.Dropout(config.dropout))
            in_features = out_features
        self.embed = nn.Sequential(*dense)
        self.embed_dim = in_features
        self.head = nn.Linear(in_features, config.num_classes) if config.num_classes else None

    def _check(self, modality: str, x: torch.Tensor, expected: tuple[int, ...]) -> None:
        if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{self.model_label} expects {modality} of shape "
                f"[B, {', '.join(map(str, expected))}], got {list(x.shape)}"
            )

    @property
    def model_label(self) -> str:
        return getattr(self, "model_name", "macnet")

    def forward_features(self, inputs: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """{"stripes": [B, 2, rows, W], "photometry": [B, 3, S, S]} -> [B, embed_dim]."""
        config = self.config
        if isinstance(inputs, Mapping):
            if "stripes" not in inputs:
                raise MissingModalityError("stripes", inputs.keys())
            stripes = inputs["stripes"]
        else:
            stripes, inputs = inputs, {}
        self._check("stripes", stripes, (2, config.stripe_rows, config.stripe_width))
        parts = [
            self.blue(stripes[:, 0:1]).flatten(1),  # (B, 8000)
            self.red(stripes[:, 1:2]).flatten(1),  # (B, 8000)
        ]
        if self.photometric is not None:
            if "photometry" not in inputs:
                raise MissingModalityError("photometry", inputs.keys() or ["stripes"])
            photometry = inputs["photometry"]
            self._check("photometry", photometry, (3, config.cutout_size, config.cutout_size))
            parts.append(self.photometric(photometry).flatten(1))  # (B, 4096)
        return self.embed(torch.cat(parts, dim=1))  # (B, 20096) -> (B, 1024)

    def forward(self, inputs: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        z = self.forward_features(inputs)
        return self.head(z) if self.head is not None else z


TINY = dict(
    arm_channels=(8, 8, 8, 8),
    stem_channels=(8, 8, 16),
    inception_channels=(4, 4, 4, 2, 2, 2),
    dense_dims=(64, 32),
)


@register_model("macnet")
def macnet(**overrides) -> MacNet:
    """MAC-Net as in the paper's Table 2: stripes (blue, red) + photometry -> 3 classes."""
    return MacNet(build_config(MacNetConfig, overrides))


@register_model("cnet")
def cnet(**overrides) -> MacNet:
    """C-Net, the paper's 2D-only ablation: the two arm branches, no photometry, no CBAM."""
    return MacNet(build_config(MacNetConfig, overrides, dict(use_photometry=False, cbam=False)))


@register_model("macnet_tiny")
def macnet_tiny(**overrides) -> MacNet:
    """MAC-Net's layout and inputs with 8-channel arms and dense 64 -> 32 (tests, smoke runs)."""
    return MacNet(build_config(MacNetConfig, overrides, TINY))


@register_model("cnet_tiny")
def cnet_tiny(**overrides) -> MacNet:
    """C-Net with macnet_tiny's widths."""
    defaults = TINY | dict(use_photometry=False, cbam=False)
    return MacNet(build_config(MacNetConfig, overrides, defaults))
