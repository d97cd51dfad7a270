"""fusion: the audio-fusion paper's multimodal classifier, for any subset of modalities.

Each modality has a branch (CONVENTIONS.md names): ``flux1d`` -> spec_cnn;
``line512``/``simple``/``overlap``/``map2d`` -> an image encoder (epsanet50 as
published, vit, or image_cnn for CPU runs); ``mel``/``mfcc``/``lfcc`` -> audio_cnn.
Each branch yields a 256-d vector (spec_cnn and audio_cnn end at 256; the image
encoders' pooled features get a linear projection, which for EPSANet is exactly its
2048 -> 256 fc in the authors' code), the vectors are concatenated in the order of
``modalities``, and one linear layer classifies. The authors' full model
(flux1d + line512 + mel + mfcc + lfcc, 5 x 256 -> 8) has about 68 M parameters.

A modality missing from the inputs is an error naming it, never a silent zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from raysurvey.models._registry import build_config, create_model, register_model
from raysurvey.models.inputs import (
    AUDIO_MODALITIES,
    FLUX_MODALITIES,
    IMAGE_MODALITIES,
    MissingModalityError,
)

AUTHORS_MODALITIES = ("flux1d", "line512", "mel", "mfcc", "lfcc")


@dataclass(frozen=True)
class FusionConfig:
    num_classes: int = 8
    modalities: tuple[str, ...] = AUTHORS_MODALITIES
    flux_encoder: str = "spec_cnn"
    image_encoder: str = "epsanet50"  # epsanet50 | vit | vit_small | image_cnn | ...
    audio_encoder: str = "audio_cnn"
    attention: str = "coord"  # spec_cnn's attention slot
    audio_variant: str = "code"  # the audio preset the features were computed with
    embed_dim: int = 256
    dropout: float = 0.0  # before the classifier
    # extra options per modality's encoder, e.g. {"map2d": {"pretrained": "dir"}}
    encoder_options: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        # canonical JSON form (tuples -> lists), so a config equals itself after a bundle
        object.__setattr__(self, "encoder_options", json.loads(json.dumps(self.encoder_options)))
        known = FLUX_MODALITIES + IMAGE_MODALITIES + AUDIO_MODALITIES
        if not self.modalities:
            raise ValueError("fusion needs at least one modality")
        unknown = [m for m in self.modalities if m not in known]
        if unknown:
            raise ValueError(f"fusion has no branch for {unknown}; known: {known}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities repeat: {self.modalities}")
        stray = sorted(set(self.encoder_options) - set(self.modalities))
        if stray:
            raise ValueError(f"encoder_options for modalities not in the model: {stray}")


def build_branch(modality: str, config: FusionConfig) -> nn.Module:
    """The encoder for one modality, returning its embedding (``num_classes=None``)."""
    options = dict(config.encoder_options.get(modality, {}))
    if modality in FLUX_MODALITIES:
        options = {"attention": config.attention, "modality": modality} | options
        return create_model(config.flux_encoder, num_classes=None, **options)
    if modality in AUDIO_MODALITIES:
        options = {"feature": modality, "variant": config.audio_variant} | options
        return create_model(config.audio_encoder, num_classes=None, **options)
    return create_model(config.image_encoder, num_classes=None, modality=modality, **options)


class FusionModel(nn.Module):
    """Branches keyed by modality -> 256-d each -> concatenated -> linear classifier."""

    takes_dict = True

    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = config
        self.modalities = tuple(config.modalities)
        self.branches = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for modality in self.modalities:
            branch = build_branch(modality, config)
            self.branches[modality] = branch
            if branch.embed_dim != config.embed_dim:
                self.projections[modality] = nn.Linear(branch.embed_dim, config.embed_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.embed_dim = config.embed_dim * len(self.modalities)
        self.head = nn.Linear(self.embed_dim, config.num_classes)

    def modality_options(self) -> dict[str, dict]:
        """How each input modality must be computed (what a bundle records)."""
        options = {m: {} for m in self.modalities}
        for branch in self.branches.values():
            options.update(getattr(branch, "modality_options", dict)())
        return options

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for modality in self.modalities:
            if modality not in inputs:
                raise MissingModalityError(modality, inputs.keys())
            z = self.branches[modality](inputs[modality])
            if modality in self.projections:
                z = self.projections[modality](z)
            parts.append(z)
        return torch.cat(parts, dim=1)  # (B, 256 * n_modalities)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.dropout(self.forward_features(inputs)))


@register_model("fusion")
def fusion(**overrides) -> FusionModel:
    """The authors' full model by default: flux1d, line512, mel, mfcc, lfcc -> 8 classes."""
    return FusionModel(build_config(FusionConfig, overrides))


@register_model("fusion_cpu")
def fusion_cpu(**overrides) -> FusionModel:
    """flux1d + simple + mel with the small image CNN: the fusion idea on a laptop."""
    defaults = dict(modalities=("flux1d", "simple", "mel"), image_encoder="image_cnn")
    return FusionModel(build_config(FusionConfig, overrides, defaults))


@register_model("fusion_tiny")
def fusion_tiny(**overrides) -> FusionModel:
    """fusion_cpu with narrow dense layers (32-d branches): for tests and smoke runs."""
    small = {"hidden_dim": 64, "embed_dim": 32}
    defaults = dict(
        modalities=("flux1d", "simple", "mel"),
        image_encoder="image_cnn",
        embed_dim=32,
        encoder_options={"flux1d": small, "mel": small, "simple": {"channels": (8, 16, 32, 32)}},
    )
    return FusionModel(build_config(FusionConfig, overrides, defaults))
