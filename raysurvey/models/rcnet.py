"""rcnet: RC-Net, the residual 1D-spectrum classifier DRC-Net is built on and compared with.

Paper: ../shared/papers/drcnet-2d-spectra-fgk.txt, Zhang et al. 2023, "DRC-Net:
double-branch celestial spectral classification network based on residual mechanisms"
(Research in Astronomy and Astrophysics 23, 125005), section 3.1 "RC-Net" (after Zou
et al. 2020), where RC-Net classifies F / G / K stars from 1D spectra.

Follows the text: eight identical modules, each a residual module -- a 1 x 1
convolution on the skip connection (it matches the channel counts) and three 1 x 3
convolutions on the main path, added -- followed by a max-pool; the backbone ends in
a 1 x 128 feature vector. ``ResidualBackbone`` is that backbone as a module, which
``drcnet`` reuses on each arm's reduced stripe.

Chosen where the text is silent (its Figure 5 is not in the text):
- channels 16, 16, 32, 32, 64, 64, 128, 128 (doubling every two modules, ending at
  the paper's 128);
- module order conv-BN-ReLU, conv-BN-ReLU, conv-BN, + 1 x 1 skip (with bias, no BN),
  ReLU after the sum (ResNet's basic block), then max-pool 2; padding 1 keeps the length
  through the convolutions;
- the 1 x 128 vector is the last module's 128 channels averaged over length (global
  average pool), so the backbone takes 3700 flux pixels (rcnet) or 3000 reduced stripe
  columns (drcnet) alike;
- as a classifier, one linear head 128 -> classes (``num_classes=None``: the 128-d
  embedding). Input: ``flux1d`` [B, 1, 3700] (the project's 1D input; the DRC-Net
  paper extracts its own 1D spectra from the stripes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raysurvey.models._registry import build_config, register_model

RCNET_CHANNELS = (16, 16, 32, 32, 64, 64, 128, 128)


@dataclass(frozen=True)
class RCNetConfig:
    num_classes: int | None = 3  # F / G / K (the DRC-Net paper's task); None: the embedding
    input_length: int = 3700
    channels: tuple[int, ...] = RCNET_CHANNELS  # chosen: eight modules ending at 128
    kernel_size: int = 3  # the paper's 1 x 3 convolutions
    modality: str = "flux1d"

    def __post_init__(self):
        check_backbone(self.channels, self.kernel_size, self.input_length)


def check_backbone(channels: tuple[int, ...], kernel_size: int, length: int) -> None:
    """Refuse layouts the backbone cannot run (empty, even kernels, too short an input)."""
    if not channels:
        raise ValueError("the backbone needs at least one module")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd to keep the length, got {kernel_size}")
    if length < 2 ** len(channels):
        raise ValueError(
            f"input length {length} is too short for {len(channels)} max-pools of 2 "
            f"(at least {2 ** len(channels)})"
        )


class ResidualModule(nn.Module):
    """[B, C_in, L] -> (three 1 x k convs) + (1 x 1 skip) -> ReLU -> max-pool -> [B, C, L // 2]."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.skip = nn.Conv1d(in_channels, channels, kernel_size=1)
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, channels, kernel_size, padding=pad),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
            nn.BatchNorm1d(channels),
        )
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.body(x) + self.skip(x)))


class ResidualBackbone(nn.Module):
    """RC-Net's backbone: [B, in_channels, L] -> eight residual modules -> [B, 128]."""

    def __init__(
        self,
        channels: tuple[int, ...] = RCNET_CHANNELS,
        kernel_size: int = 3,
        in_channels: int = 1,
    ):
        super().__init__()
        blocks = []
        for out_channels in channels:
            blocks.append(ResidualModule(in_channels, out_channels, kernel_size))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.embed_dim = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)  # (B, 128, L / 256)
        return x.mean(dim=2)  # (B, 128): the paper's 1 x 128


class RCNet(nn.Module):
    """RC-Net on 1D flux: [B, 1, L] -> backbone -> 128 -> linear head."""

    def __init__(self, config: RCNetConfig):
        super().__init__()
        self.config = config
        self.modalities = (config.modality,)
        self.backbone = ResidualBackbone(config.channels, config.kernel_size)
        self.embed_dim = self.backbone.embed_dim
        self.head = nn.Linear(self.embed_dim, config.num_classes) if config.num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, L] (or [B, L]) flux -> [B, 128]."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.config.input_length:
            raise ValueError(
                f"rcnet expects flux of shape [B, 1, {self.config.input_length}], "
                f"got {list(x.shape)}"
            )
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("rcnet")
def rcnet(**overrides) -> RCNet:
    """RC-Net on the 1 x 3700 flux, 3 classes (F / G / K) by default."""
    return RCNet(build_config(RCNetConfig, overrides))
