"""From modality arrays to model inputs, and one way to call any registered model.

The pipeline yields modalities in the layouts of CONVENTIONS.md (flux1d [B, N] float,
images uint8 [B, 224, 224, 3], audio features float [B, F, T], stripes float
[B, 2, 11, W] with the arm axis blue then red, photometry float [B, 64, 64, 3] in
[-1, 1]); models take torch layouts (flux [B, 1, N], images float [B, 3, H, W] in
[0, 1], audio [B, 1, F, T], stripes [B, 2, 11, W] unchanged, photometry
[B, 3, 64, 64]).
Every model declares the modalities it reads in ``model.modalities``; single-branch
models take one tensor, the fusion model a dict.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

IMAGE_MODALITIES = ("simple", "overlap", "map2d", "line512")
AUDIO_MODALITIES = ("mel", "mfcc", "lfcc")
FLUX_MODALITIES = ("flux1d",)
STRIPE_MODALITIES = ("stripes",)
PHOTOMETRY_MODALITIES = ("photometry",)


class MissingModalityError(KeyError):
    """A model needs a modality the batch does not have (never filled in silently)."""

    def __init__(self, modality: str, available):
        self.modality = modality
        super().__init__(
            f"the model needs modality {modality!r} but the batch has only "
            f"{sorted(available) or 'nothing'}"
        )

    def __str__(self) -> str:
        return self.args[0]


def to_model_tensor(modality: str, array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """One modality batch in the layout the models take (float32, channel axis added)."""
    x = torch.as_tensor(array)
    if modality in IMAGE_MODALITIES:
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"{modality}: expected images [B, H, W, 3], got {list(x.shape)}")
        x = x.permute(0, 3, 1, 2)
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    if modality in AUDIO_MODALITIES:
        return x.float().unsqueeze(1) if x.dim() == 3 else x.float()
    if modality in FLUX_MODALITIES:
        return x.float().unsqueeze(1) if x.dim() == 2 else x.float()
    if modality in STRIPE_MODALITIES:
        if x.dim() != 4 or x.shape[1] != 2:
            raise ValueError(
                f"{modality}: expected [B, 2 arms, rows, columns], got {list(x.shape)}"
            )
        return x.float()
    if modality in PHOTOMETRY_MODALITIES:
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"{modality}: expected cutouts [B, H, W, 3], got {list(x.shape)}")
        return x.permute(0, 3, 1, 2).float()
    raise ValueError(f"no model input layout for modality {modality!r}")


def prepare_inputs(
    batch: Mapping[str, np.ndarray | torch.Tensor],
    modalities: tuple[str, ...],
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """The model tensors for ``modalities`` out of a pipeline batch."""
    for name in modalities:
        if name not in batch:
            raise MissingModalityError(name, batch.keys())
    out = {}
    for name in modalities:
        x = to_model_tensor(name, batch[name])
        out[name] = x.to(device, non_blocking=True) if device is not None else x
    return out


def example_inputs(model: nn.Module, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random model tensors of the right shapes for every modality ``model`` reads
    (tests, benchmarks, smoke runs): flux and images uniform in [0, 1], audio and
    stripes normal, photometry uniform in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    branches = getattr(model, "branches", {})
    out = {}
    for name in model.modalities:
        owner = branches[name] if name in branches else model
        if name in FLUX_MODALITIES:
            shape = (1, owner.config.input_length)
            out[name] = torch.rand(n, *shape, generator=g)
        elif name in AUDIO_MODALITIES:
            out[name] = torch.randn(n, 1, *owner.input_shape, generator=g)
        elif name in STRIPE_MODALITIES:
            shape = (2, owner.config.stripe_rows, owner.config.stripe_width)
            out[name] = torch.randn(n, *shape, generator=g)
        elif name in PHOTOMETRY_MODALITIES:
            size = owner.config.cutout_size
            out[name] = torch.rand(n, 3, size, size, generator=g) * 2 - 1
        else:
            size = getattr(owner.config, "image_size", 224)
            out[name] = torch.rand(n, 3, size, size, generator=g)
    return out


def prepare_inference(model: nn.Module) -> nn.Module:
    """Build the inference fast paths of ``model`` and its branches (e.g. spec_cnn's
    folded, channels-last convolutions) from the current weights; returns ``model``.

    Call it once the weights are loaded and the model is on its device (``load_bundle``
    does). The fast paths run only in eval mode without autograd, so training and
    gradients see the plain model; ``model.train()`` drops them.
    """
    for module in model.modules():
        prepare = getattr(module, "prepare_inference", None)
        if callable(prepare):
            prepare()
    return model


def run_model(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Call any registered model (or its DDP wrapper) on model tensors keyed by modality."""
    inner = model.module if isinstance(getattr(model, "module", None), nn.Module) else model
    modalities = inner.modalities
    for name in modalities:
        if name not in inputs:
            raise MissingModalityError(name, inputs.keys())
    if getattr(inner, "takes_dict", False):
        return model(inputs)
    return model(inputs[modalities[0]])
