"""image_cnn: a small CNN image encoder for CPU runs.

Not from a paper: a stand-in for EPSANet-50 or the ViT where neither fits the hardware
(a laptop, CI, a quick Tune sweep). Four blocks of 3x3 convolution + BatchNorm + ReLU +
max-pool 2 over the 224 x 224 RGB plot, the first convolution with stride 2 (224 ->
112: thin plotted lines survive as grey), global average pool, a linear head. About
0.1 M parameters and about a millisecond per image on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raysurvey.models._registry import build_config, register_model


@dataclass(frozen=True)
class ImageCNNConfig:
    num_classes: int | None = 8  # None: output the pooled features
    channels: tuple[int, ...] = (16, 32, 64, 128)
    in_channels: int = 3
    modality: str = "simple"


class ImageCNN(nn.Module):
    """Small convolutional encoder over [B, 3, H, W] images in [0, 1]."""

    def __init__(self, config: ImageCNNConfig):
        super().__init__()
        self.config = config
        self.modalities = (config.modality,)
        layers = []
        in_channels = config.in_channels
        for i, out_channels in enumerate(config.channels):
            stride = 2 if i == 0 else 1
            layers += [
                nn.Conv2d(
                    in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
                ),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.embed_dim = in_channels
        self.head = nn.Linear(in_channels, config.num_classes) if config.num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"image_cnn expects images [B, {self.config.in_channels}, H, W], "
                f"got {list(x.shape)}"
            )
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("image_cnn")
def image_cnn(**overrides) -> ImageCNN:
    """Small CPU image encoder (any image modality via ``modality=``)."""
    return ImageCNN(build_config(ImageCNNConfig, overrides))
