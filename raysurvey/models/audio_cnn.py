"""audio_cnn: the three-layer CNN the audio-fusion paper runs on each audio feature.

Per the authors' code (../shared/DESIGN.md): conv 5x5 padding 2 (1 -> 32), ReLU,
max-pool 2; conv 5x5 padding 2 (32 -> 64), ReLU, max-pool 2; conv 5x5 padding 2
(64 -> 64), ReLU; dropout 0.4; flatten -> 1024 -> 256. The authors hard-coded the
flatten size per feature (15360 Mel, 10304 MFCC, 5824 LFCC); here it follows from the
feature shape of the chosen audio variant (``raysurvey.modalities.audio.audio_shape``),
so the ``paper`` variant and other signal lengths work too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raysurvey.modalities.audio import FEATURES, N_SAMPLES, VARIANTS, audio_shape
from raysurvey.models._registry import build_config, register_model


@dataclass(frozen=True)
class AudioCNNConfig:
    num_classes: int | None = 8  # None: output the embedding (a fusion branch)
    feature: str = "mel"  # mel | mfcc | lfcc: also the modality it reads
    variant: str = "code"  # the audio preset the feature was computed with
    n_samples: int = N_SAMPLES
    channels: tuple[int, ...] = (32, 64, 64)
    kernel_size: int = 5
    dropout: float = 0.4
    hidden_dim: int = 1024
    embed_dim: int = 256

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ValueError(f"unknown audio feature {self.feature!r}; known: {FEATURES}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown audio variant {self.variant!r}; known: {VARIANTS}")


class AudioCNN(nn.Module):
    """Three conv layers over a [B, 1, F, T] audio feature."""

    def __init__(self, config: AudioCNNConfig):
        super().__init__()
        self.config = config
        self.modalities = (config.feature,)
        self.input_shape = audio_shape(config.feature, config.variant, config.n_samples)
        layers = []
        in_channels = 1
        height, width = self.input_shape
        pad = config.kernel_size // 2
        for i, out_channels in enumerate(config.channels):
            layers += [nn.Conv2d(in_channels, out_channels, config.kernel_size, padding=pad)]
            layers += [nn.ReLU()]
            if i < len(config.channels) - 1:  # every layer but the last pools
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
                height, width = height // 2, width // 2
            in_channels = out_channels
        if height < 1 or width < 1:
            raise ValueError(f"feature shape {self.input_shape} is too small for these layers")
        self.features = nn.Sequential(*layers)
        self.flat_dim = in_channels * height * width
        self.embed = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(self.flat_dim, config.hidden_dim),
            nn.Linear(config.hidden_dim, config.embed_dim),
        )
        self.embed_dim = config.embed_dim
        self.head = nn.Linear(config.embed_dim, config.num_classes) if config.num_classes else None

    def modality_options(self) -> dict[str, dict]:
        """How the input feature must be computed (what a bundle records)."""
        return {self.config.feature: {"variant": self.config.variant}}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, F, T] (or [B, F, T]) -> [B, embed_dim]."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, *self.input_shape):
            raise ValueError(
                f"audio_cnn for {self.config.feature} ({self.config.variant}) expects "
                f"[B, 1, {self.input_shape[0]}, {self.input_shape[1]}], got {list(x.shape)}"
            )
        return self.embed(self.features(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("audio_cnn")
def audio_cnn(**overrides) -> AudioCNN:
    """The authors' audio CNN; ``feature=mel|mfcc|lfcc``, ``variant=code|paper``."""
    return AudioCNN(build_config(AudioCNNConfig, overrides))
