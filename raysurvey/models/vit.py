"""vit: a DINO ViT with a linear head on the CLS token, as Spectromer fine-tunes it.

Spectromer (../shared/papers/spectromer-vit-spectral-plots.txt) fine-tunes
facebook/dino-vitb16 on plotted spectra with ``Linear(768 -> n)`` on the CLS token of
``last_hidden_state``, inputs normalised with mean = std = 0.5, for classification
(star/galaxy/QSO) or regression (redshift; Teff, log g, [Fe/H]: ``num_classes`` is then
the number of targets). The backbone is ``transformers.ViTModel`` without its pooler
(``add_pooling_layer=False``: the head reads the CLS token, and an unused pooler would
get no gradient under DDP).

Weights: ``pretrained=`` a hub id (where the hub is reachable) or a local directory
saved with ``save_pretrained``, loaded through ``ViTModel.from_pretrained``. Without it
the backbone starts from random init, and the config records that
(``initialised_from=None``). Built from pretrained weights, the stored config takes
the checkpoint's architecture and moves the source to ``initialised_from``, so a
bundle rebuilds the same network without needing the source again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from transformers import ViTConfig, ViTModel

from raysurvey.models._registry import build_config, register_model

DINO_VITB16 = "facebook/dino-vitb16"
DINO_VITS16 = "facebook/dino-vits16"


@dataclass(frozen=True)
class ViTClassifierConfig:
    """Architecture defaults are facebook/dino-vitb16's config (ViT-B/16)."""

    num_classes: int | None = 3  # classes, or regression targets; None: the CLS embedding
    pretrained: str | None = None  # hub id or local directory for from_pretrained
    initialised_from: str | None = None  # provenance: where the weights first came from
    modality: str = "map2d"  # Spectromer's best image type
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    image_size: int = 224
    patch_size: int = 16
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    image_mean: float = 0.5
    image_std: float = 0.5

    def hf_config(self) -> ViTConfig:
        return ViTConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=3,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            layer_norm_eps=self.layer_norm_eps,
            qkv_bias=True,
        )


def _architecture(hf: ViTConfig) -> dict:
    return dict(
        hidden_size=hf.hidden_size,
        num_hidden_layers=hf.num_hidden_layers,
        num_attention_heads=hf.num_attention_heads,
        intermediate_size=hf.intermediate_size,
        image_size=hf.image_size,
        patch_size=hf.patch_size,
        layer_norm_eps=hf.layer_norm_eps,
    )


class ViTClassifier(nn.Module):
    """ViT backbone + linear head on the CLS token, over [B, 3, H, W] images in [0, 1]."""

    def __init__(self, config: ViTClassifierConfig):
        super().__init__()
        if config.pretrained:
            self.backbone = ViTModel.from_pretrained(config.pretrained, add_pooling_layer=False)
            config = dataclasses.replace(
                config,
                pretrained=None,
                initialised_from=config.pretrained,
                **_architecture(self.backbone.config),
            )
        else:
            self.backbone = ViTModel(config.hf_config(), add_pooling_layer=False)
        self.config = config
        self.modalities = (config.modality,)
        self.embed_dim = config.hidden_size
        self.head = (
            nn.Linear(config.hidden_size, config.num_classes) if config.num_classes else None
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> the CLS token of the last hidden state [B, hidden]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"vit expects images [B, 3, H, W], got {list(x.shape)}")
        x = (x - self.config.image_mean) / self.config.image_std
        return self.backbone(pixel_values=x).last_hidden_state[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("vit")
def vit(**overrides) -> ViTClassifier:
    """DINO ViT-B/16 (85.8 M backbone); ``pretrained="facebook/dino-vitb16"`` or a dir."""
    return ViTClassifier(build_config(ViTClassifierConfig, overrides))


@register_model("vit_small")
def vit_small(**overrides) -> ViTClassifier:
    """DINO ViT-S/16 (facebook/dino-vits16's config, 21.7 M backbone): CPU-friendlier."""
    defaults = dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536)
    return ViTClassifier(build_config(ViTClassifierConfig, overrides, defaults))


@register_model("vit_tiny")
def vit_tiny(**overrides) -> ViTClassifier:
    """Two layers of width 64 on 32-pixel patches: for tests and smoke runs."""
    defaults = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        patch_size=32,
    )
    return ViTClassifier(build_config(ViTClassifierConfig, overrides, defaults))
