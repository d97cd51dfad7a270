"""spec_cnn: the eight-layer 1D CNN over 1 x 3700 flux of the audio-fusion paper.

Follows the authors' code (../shared/DESIGN.md, "What the published code actually
does"): eight blocks of convolution (kernels 1, 2, 3, 4, 5, 7, 8, 9; channels 10 to 60;
no padding) + BatchNorm + LeakyReLU + max-pool of 2 with strides alternating 1 and 2,
which leaves a 60 x 219 map; an attention module on that map; then flatten 13140 ->
(LeakyReLU) -> 1024 -> 256. The 256-d vector is the branch embedding the fusion model
concatenates; as a classifier a linear head maps it to ``num_classes``. The authors
wrote Conv2d with (1, k) kernels on [B, 1, 1, 3700]; Conv1d on [B, 1, 3700] is the same
operation with the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raysurvey.models._registry import build_config, register_model
from raysurvey.models.attention import ATTENTIONS, get_attention


@dataclass(frozen=True)
class SpecCNNConfig:
    """Layer sizes default to the authors' code, so parameter counts match theirs."""

    num_classes: int | None = 8  # None: output the embedding (a fusion branch)
    attention: str = "coord"  # the published model's choice (best in the paper's Table 3)
    input_length: int = 3700
    kernels: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 8, 9)
    channels: tuple[int, ...] = (10, 10, 20, 30, 40, 50, 60, 60)
    pool_strides: tuple[int, ...] = (1, 2, 1, 2, 1, 2, 1, 2)
    hidden_dim: int = 1024
    embed_dim: int = 256
    dropout: float = 0.0
    modality: str = "flux1d"

    def __post_init__(self):
        if not len(self.kernels) == len(self.channels) == len(self.pool_strides):
            raise ValueError("kernels, channels and pool_strides need the same length")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; known: {ATTENTIONS}")


def feature_length(config: SpecCNNConfig) -> int:
    """Length of the map before attention (219 for the authors' layers on 3700)."""
    length = config.input_length
    for k, stride in zip(config.kernels, config.pool_strides, strict=True):
        length = length - k + 1  # valid convolution
        length = (length - 2) // stride + 1  # max-pool of 2
        if length < 1:
            raise ValueError(f"input_length {config.input_length} is too short for these layers")
    return length


class SpecCNN(nn.Module):
    """Eight-layer 1D CNN with an attention slot (audio-fusion paper, section 3)."""

    def __init__(self, config: SpecCNNConfig):
        super().__init__()
        self.config = config
        self.modalities = (config.modality,)
        blocks = []
        in_channels = 1
        for k, out_channels, stride in zip(
            config.kernels, config.channels, config.pool_strides, strict=True
        ):
            blocks += [
                nn.Conv1d(in_channels, out_channels, kernel_size=k),
                nn.BatchNorm1d(out_channels),
                nn.LeakyReLU(),
                nn.MaxPool1d(kernel_size=2, stride=stride),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.attention = get_attention(config.attention, in_channels)
        self.flat_dim = in_channels * feature_length(config)
        self.embed = nn.Sequential(
            nn.LeakyReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(self.flat_dim, config.hidden_dim),
            nn.Linear(config.hidden_dim, config.embed_dim),
        )
        self.embed_dim = config.embed_dim
        self.head = nn.Linear(config.embed_dim, config.num_classes) if config.num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, L] (or [B, L]) flux -> [B, embed_dim]."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.config.input_length:
            raise ValueError(
                f"spec_cnn expects flux of shape [B, 1, {self.config.input_length}], "
                f"got {list(x.shape)}"
            )
        x = self.attention(self.features(x))  # (B, 60, 219)
        return self.embed(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("spec_cnn")
def spec_cnn(**overrides) -> SpecCNN:
    """The authors' 1D CNN, CoordAtt by default; ``attention=`` any of ATTENTIONS."""
    return SpecCNN(build_config(SpecCNNConfig, overrides))
