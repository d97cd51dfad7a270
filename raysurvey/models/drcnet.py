"""drcnet: DRC-Net, a two-branch classifier of 2D spectra (blue and red arm stripes).

Paper: ../shared/papers/drcnet-2d-spectra-fgk.txt, Zhang et al. 2023, "DRC-Net:
double-branch celestial spectral classification network based on residual mechanisms"
(Research in Astronomy and Astrophysics 23, 125005), section 3.2. F / G / K stars from
LAMOST stripes of 11 x 3000 pixels (columns 500-3500), z-scored.

Follows the text, per arm (two identical units with their own weights):
- a dimension-reduction module of three 1D convolutions with kernels 5, 5, 3 that
  turns the 11 x 3000 stripe into a 1 x 3000 sequence (the simulated "spectral
  extraction");
- the RC-Net backbone (``raysurvey.models.rcnet.ResidualBackbone``) -> 1 x 128;
then the two arms' 1 x 128 vectors stacked as 2 x 128, two 1 x 3 convolutions (the
fusion module) and three fully connected layers to the classes (the last is the head).

Chosen where the text is silent (each a config field, commented there):
- ``reduction="channels"`` (default): the 11 rows are the input channels of Conv1d
  layers along wavelength (11 -> 8 -> 4 -> 1 channels, padding 2, 2, 1 so the length
  stays 3000). ``reduction="spatial"`` is the other reading of "kernel sizes 5 x 1,
  5 x 1 and 3 x 1": the kernels run along the 11-pixel spatial axis without padding,
  11 -> 7 -> 3 -> 1 rows, shared along wavelength (8 and 4 feature maps between); the
  row arithmetic fits that reading exactly, the text does not decide it;
- BatchNorm + ReLU between the reduction convolutions, none after the last (its output
  plays the part of an extracted, z-scored spectrum);
- the backbone's layout (see rcnet);
- fusion convolutions of 16 and 16 channels with padding 1, each followed by BN + ReLU;
  fully connected 2048 -> 256 -> 64 (ReLU) -> classes; no dropout.
``drcnet_tiny`` takes the same 2 x 11 x 3000 input with narrow layers (tests, smoke runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raysurvey.models._registry import build_config, register_model
from raysurvey.models.rcnet import RCNET_CHANNELS, ResidualBackbone, check_backbone

REDUCTIONS = ("channels", "spatial")


@dataclass(frozen=True)
class DRCNetConfig:
    num_classes: int | None = 3  # F / G / K; None: output the embedding (last hidden layer)
    stripe_rows: int = 11
    stripe_width: int = 3000  # columns 500-3500 of each arm (the paper's window)
    reduction: str = "channels"  # chosen: rows as Conv1d channels | "spatial" (see above)
    reduction_kernels: tuple[int, ...] = (5, 5, 3)  # the paper's
    reduction_channels: tuple[int, ...] = (8, 4)  # chosen: widths between the 3 convs
    backbone_channels: tuple[int, ...] = RCNET_CHANNELS  # chosen (rcnet): 8 modules -> 128
    kernel_size: int = 3  # the backbone's and the fusion's 1 x 3 convolutions
    fusion_channels: tuple[int, ...] = (16, 16)  # chosen: the two 1 x 3 convs
    hidden_dims: tuple[int, ...] = (256, 64)  # chosen: FC 1 and 2 of 3 (3 is the head)

    def __post_init__(self):
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduction!r}; known: {REDUCTIONS}")
        if len(self.reduction_channels) != len(self.reduction_kernels) - 1:
            raise ValueError("reduction_channels needs one width fewer than reduction_kernels")
        if any(k % 2 == 0 for k in self.reduction_kernels) or self.kernel_size % 2 == 0:
            raise ValueError("kernels must be odd (the lengths are kept with symmetric padding)")
        rows_left = self.stripe_rows - sum(k - 1 for k in self.reduction_kernels)
        if self.reduction == "spatial" and rows_left != 1:
            raise ValueError(
                f"spatial reduction with kernels {self.reduction_kernels} takes "
                f"{self.stripe_rows} rows to {rows_left}, not 1"
            )
        if not self.fusion_channels or not self.hidden_dims:
            raise ValueError("fusion_channels and hidden_dims need at least one layer each")
        check_backbone(self.backbone_channels, self.kernel_size, self.stripe_width)


class DimensionReduction(nn.Module):
    """One arm's stripe [B, rows, W] -> [B, 1, W] (the paper's data dimension reduction)."""

    def __init__(self, config: DRCNetConfig):
        super().__init__()
        self.spatial = config.reduction == "spatial"
        widths = (1 if self.spatial else config.stripe_rows, *config.reduction_channels, 1)
        layers: list[nn.Module] = []
        for i, k in enumerate(config.reduction_kernels):
            c_in, c_out = widths[i], widths[i + 1]
            if self.spatial:  # valid along the rows, 1 wide along wavelength
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=(k, 1)))
            else:  # along wavelength, the length kept
                layers.append(nn.Conv1d(c_in, c_out, kernel_size=k, padding=k // 2))
            if i < len(config.reduction_kernels) - 1:
                norm = nn.BatchNorm2d if self.spatial else nn.BatchNorm1d
                layers += [norm(c_out), nn.ReLU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial:
            return self.layers(x.unsqueeze(1)).squeeze(2)  # (B, 1, 11, W) -> (B, 1, 1, W)
        return self.layers(x)  # (B, 11, W) -> (B, 1, W)


class DRCNet(nn.Module):
    """Per arm: reduction -> RC-Net backbone; stack 2 x 128 -> two convs -> three FCs."""

    def __init__(self, config: DRCNetConfig):
        super().__init__()
        self.config = config
        self.modalities = ("stripes",)
        self.reduce = nn.ModuleList([DimensionReduction(config) for _ in range(2)])
        self.backbones = nn.ModuleList(
            [ResidualBackbone(config.backbone_channels, config.kernel_size) for _ in range(2)]
        )
        length = self.backbones[0].embed_dim  # 128: the fusion convs run along it
        fusion: list[nn.Module] = []
        in_channels = 2  # blue, red
        for out_channels in config.fusion_channels:
            fusion += [
                nn.Conv1d(
                    in_channels, out_channels, config.kernel_size, padding=config.kernel_size // 2
                ),
                nn.BatchNorm1d(out_channels),
                nn.ReLU(),
            ]
            in_channels = out_channels
        self.fusion = nn.Sequential(*fusion)
        self.flat_dim = in_channels * length
        dense: list[nn.Module] = []
        in_features = self.flat_dim
        for out_features in config.hidden_dims:
            dense += [nn.Linear(in_features, out_features), nn.ReLU()]
            in_features = out_features
        self.classifier = nn.Sequential(*dense)
        self.embed_dim = in_features
        self.head = nn.Linear(in_features, config.num_classes) if config.num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stripes [B, 2, rows, W] (blue, red) -> [B, embed_dim]."""
        expected = (2, self.config.stripe_rows, self.config.stripe_width)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"drcnet expects stripes of shape [B, {', '.join(map(str, expected))}], "
                f"got {list(x.shape)}"
            )
        arms = [
            backbone(reduce(x[:, arm]))  # (B, 11, 3000) -> (B, 1, 3000) -> (B, 128)
            for arm, (reduce, backbone) in enumerate(zip(self.reduce, self.backbones, strict=True))
        ]
        z = self.fusion(torch.stack(arms, dim=1))  # (B, 2, 128) -> (B, 16, 128)
        return self.classifier(z.flatten(1))  # (B, 2048) -> (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("drcnet")
def drcnet(**overrides) -> DRCNet:
    """DRC-Net on 2 x 11 x 3000 stripes, 3 classes (F / G / K) by default."""
    return DRCNet(build_config(DRCNetConfig, overrides))


@register_model("drcnet_tiny")
def drcnet_tiny(**overrides) -> DRCNet:
    """DRC-Net's layout and inputs with narrow layers: backbone to 16, FCs 32 -> 16."""
    defaults = dict(
        reduction_channels=(4, 2),
        backbone_channels=(4, 4, 8, 8, 8, 8, 16, 16),
        fusion_channels=(4, 4),
        hidden_dims=(32, 16),
    )
    return DRCNet(build_config(DRCNetConfig, overrides, defaults))
