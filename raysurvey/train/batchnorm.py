"""Re-estimating BatchNorm statistics after an epoch, without dropout.

Why: MAC-Net (its Table 2) puts dropout 0.5 after every arm block, in front of the
next convolution and its BatchNorm. In training the BatchNorm layers then see
activations thinned and rescaled by dropout; at evaluation they do not, and the
running statistics collected in training no longer fit ("variance shift", Li et al.
2019, arXiv:1801.05134). Measured here on synthetic 2D spectra: a narrow MAC-Net at
77 % validation accuracy with batch statistics scored 45 % with its running ones.
The remedy that keeps the published architecture: after each epoch, recompute every
BatchNorm's statistics over the training data in evaluation mode (dropout off), as
a cumulative average; validation and checkpoints then use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BATCHNORMS) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable, forward: Callable[[nn.Module, object], object]
) -> int:
    """Replace the running mean / variance of every BatchNorm in ``model`` by their
    average over ``batches`` seen with dropout off; returns the batches used (0: the
    model has no BatchNorm, or no batch came, and nothing changed).

    ``forward(model, batch)`` runs the model on one batch (the training loop's input
    preparation). The model is left in evaluation mode.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
        m.train()
    used = 0
    for batch in batches:
        forward(model, batch)
        used += 1
    model.eval()
    for m, (momentum, mean, var) in zip(layers, saved, strict=True):
        m.momentum = momentum
        if not used:  # nothing seen: keep the statistics the model had
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    return used
