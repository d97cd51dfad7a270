"""Attention modules for 1D feature maps [B, C, L], built by name with ``get_attention``.

The spec_cnn's attention slot takes one of ``ATTENTIONS`` (the strings a Tune sweep
searches). Each module follows its own paper; where the paper is 2D the docstring says
how it is read on a 1D map. The audio-fusion authors ran their 2D modules on
[B, C, 1, L] maps (Conv2d with (1, k) kernels), so a 2D module with H = 1 is the
reference for the 1D reading: pooling "along H" is the identity and pooling "along W"
is the global pool over L.

``ConvBlockAttention2d`` is CBAM on 2D maps [B, C, H, W] as its paper has it (MAC-Net
puts it on the 2D-spectrum feature maps); it is not one of ``ATTENTIONS``, which are
the 1D slot's choices.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

ATTENTIONS = ("none", "se", "eca", "bam", "gct", "coord", "criss_cross", "cbam")


class SqueezeExcitation(nn.Module):
    """SE (Hu et al. 2018, "Squeeze-and-Excitation Networks").

    Global average pool over L (the squeeze), a bottleneck MLP C -> C/r -> C with ReLU
    and a sigmoid (the excitation), then channel-wise rescaling. 1D: the pool runs over
    the length instead of H x W; nothing else changes. Bias-free FCs as in the
    audio-fusion authors' SE; r = 16 as in the paper (the authors used 15).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=2)  # (B, C)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return x * w.unsqueeze(-1)


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA's adaptive kernel: |log2(C) / gamma + b / gamma| rounded to the nearest odd."""
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020, "ECA-Net").

    SE without the bottleneck: a bias-free 1D convolution of adaptive size k across the
    pooled channel descriptor (local cross-channel interaction), then a sigmoid. Already
    1D in the channel direction; the spatial pool runs over L. k = 3 for 60 channels,
    as in the audio-fusion code.
    """

    def __init__(self, channels: int, kernel_size: int | None = None):
        super().__init__()
        k = kernel_size or eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=2, keepdim=True).transpose(1, 2)  # (B, 1, C)
        w = torch.sigmoid(self.conv(w)).transpose(1, 2)  # (B, C, 1)
        return x * w


class BottleneckAttention(nn.Module):
    """BAM (Park et al. 2018, "BAM: Bottleneck Attention Module").

    M(F) = sigmoid(Mc(F) + Ms(F)) and F' = F + F * M(F). Mc: global average pool, MLP
    C -> C/r -> C with BN and ReLU. Ms: 1x1 reduction to C/r, two dilated 3-wide
    convolutions (dilation 4), 1x1 to one map. 1D: the dilated 3x3 convolutions become
    3-tap 1D convolutions with the same dilation, so the receptive field along L is the
    paper's along one axis. (The audio-fusion code multiplies Mc and Ms; the paper adds
    them, which is what this does.)
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channel_gate = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
        )
        self.spatial_gate = nn.Sequential(
            nn.Conv1d(channels, hidden, kernel_size=1),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=3, padding=dilation, dilation=dilation),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=3, padding=dilation, dilation=dilation),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Conv1d(hidden, 1, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.channel_gate(x.mean(dim=2)).unsqueeze(-1)  # (B, C, 1)
        ms = self.spatial_gate(x)  # (B, 1, L)
        return x * (1 + torch.sigmoid(mc + ms))


class GatedChannelTransformation(nn.Module):
    """GCT (Yang et al. 2020, "Gated Channel Transformation for Visual Recognition").

    Global context embedding s_c = alpha_c * ||x_c||_2, channel normalisation
    s_hat = sqrt(C) * s / ||s||_2, gate 1 + tanh(gamma * s_hat + beta). Initialised
    alpha = 1, gamma = beta = 0 (the identity), as the paper recommends. 1D: the l2 norm
    runs over L instead of H x W.
    """

    def __init__(self, channels: int, epsilon: float = 1e-5):
        super().__init__()
        self.epsilon = epsilon
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sqrt(x.pow(2).sum(dim=2, keepdim=True) + self.epsilon) * self.alpha
        s_hat = s / torch.sqrt(s.pow(2).mean(dim=1, keepdim=True) + self.epsilon)
        return x * (1 + torch.tanh(self.gamma * s_hat + self.beta))


class CoordinateAttention(nn.Module):
    """Coordinate Attention (Hou et al. 2021, "Coordinate Attention for Efficient
    Mobile Network Design").

    The 2D module pools along W (one descriptor per row) and along H (one per column),
    transforms both with a shared 1x1 conv + BN + h-swish to mip = max(8, C / r)
    channels, splits, and gates x by sigmoid(conv_h) * sigmoid(conv_w). 1D, read as
    H = 1: the "row" descriptor is the global average over L (one gate per channel) and
    the "column" descriptors are the per-position features (a gate per channel and
    position); both still share the 1x1 transform. This is exactly what the authors'
    CoordAtt computes on their [B, 60, 1, 219] map, with the same parameters. r = 32 as
    in the paper; the authors' r = 10 gives the same mip = 8 at 60 channels.
    """

    def __init__(self, channels: int, reduction: int = 32):
        super().__init__()
        mip = max(8, channels // reduction)
        self.conv1 = nn.Conv1d(channels, mip, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(mip)
        self.conv_h = nn.Conv1d(mip, channels, kernel_size=1)
        self.conv_w = nn.Conv1d(mip, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[2]
        pooled = x.mean(dim=2, keepdim=True)  # (B, C, 1): pool along W of the H=1 map
        y = torch.cat([pooled, x], dim=2)  # (B, C, 1 + L)
        y = F.hardswish(self.bn1(self.conv1(y)))
        y_h, y_w = torch.split(y, [1, length], dim=2)
        return x * torch.sigmoid(self.conv_h(y_h)) * torch.sigmoid(self.conv_w(y_w))


class CrissCrossAttention(nn.Module):
    """Criss-Cross Attention (Huang et al. 2019, "CCNet: Criss-Cross Attention for
    Semantic Segmentation").

    Each position attends to the positions on its row and column (queries and keys at
    C/8 channels, values at C), out = gamma * attended + x with gamma initialised to 0.
    1D, read as H = 1: the column holds only the position itself (which CCNet counts
    once, on the row), so the criss-cross path is the whole sequence and the module is
    self-attention along L. CCNet's recurrence (applying the module R times with shared
    weights so information reaches every pixel) is kept as ``recurrence``; along one
    axis R = 1 already reaches every position, and the authors' code applies it once.
    """

    def __init__(self, channels: int, recurrence: int = 1):
        super().__init__()
        inner = max(1, channels // 8)
        self.recurrence = recurrence
        self.query = nn.Conv1d(channels, inner, kernel_size=1)
        self.key = nn.Conv1d(channels, inner, kernel_size=1)
        self.value = nn.Conv1d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).transpose(1, 2)  # (B, L, C/8)
        k = self.key(x)  # (B, C/8, L)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, L, L)
        out = torch.bmm(self.value(x), attn.transpose(1, 2))  # (B, C, L)
        return self.gamma * out + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = self._attend(x)
        return x


def _shared_mlp(channels: int, reduction: int) -> nn.Sequential:
    """CBAM's channel MLP C -> C/r -> C (with biases), shared by both pooled inputs."""
    hidden = max(1, channels // reduction)
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))


class ConvBlockAttention(nn.Module):
    """CBAM (Woo et al. 2018, "CBAM: Convolutional Block Attention Module").

    Channel attention first: average- and max-pooled descriptors through a shared MLP
    (C -> C/r -> C, r = 16), summed, sigmoid. Then spatial attention: channel-wise mean
    and max stacked as 2 maps, a 7-wide convolution, sigmoid. 1D: the paper's 7x7
    spatial convolution becomes a 7-tap 1D convolution over L.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7):
        super().__init__()
        self.mlp = _shared_mlp(channels, reduction)
        self.spatial = nn.Conv1d(
            2, 1, kernel_size=spatial_kernel, padding=spatial_kernel // 2, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.mlp(x.mean(dim=2)) + self.mlp(x.amax(dim=2))  # (B, C)
        x = x * torch.sigmoid(mc).unsqueeze(-1)
        maps = torch.stack([x.mean(dim=1), x.amax(dim=1)], dim=1)  # (B, 2, L)
        return x * torch.sigmoid(self.spatial(maps))


class ConvBlockAttention2d(nn.Module):
    """CBAM (Woo et al. 2018) on 2D maps [B, C, H, W], as the paper defines it.

    The same two steps as ``ConvBlockAttention``, with the pools over H x W and the
    spatial attention a 7 x 7 convolution of the stacked channel-wise mean and max
    maps. Shared MLP C -> C/r -> C with biases, r = 16; bias-free spatial convolution
    without the BatchNorm of the CBAM authors' code, like the 1D module.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7):
        super().__init__()
        self.mlp = _shared_mlp(channels, reduction)
        self.spatial = nn.Conv2d(
            2, 1, kernel_size=spatial_kernel, padding=spatial_kernel // 2, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))  # (B, C)
        x = x * torch.sigmoid(mc)[:, :, None, None]
        maps = torch.stack([x.mean(dim=1), x.amax(dim=1)], dim=1)  # (B, 2, H, W)
        return x * torch.sigmoid(self.spatial(maps))  # (B, C, H, W)


_FACTORIES = {
    "none": lambda channels, **kw: nn.Identity(),
    "se": SqueezeExcitation,
    "eca": EfficientChannelAttention,
    "bam": BottleneckAttention,
    "gct": GatedChannelTransformation,
    "coord": CoordinateAttention,
    "criss_cross": CrissCrossAttention,
    "cbam": ConvBlockAttention,
}


def get_attention(name: str, channels: int, **options) -> nn.Module:
    """Attention module ``name`` for a [B, channels, L] map (``"none"``: identity)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(ATTENTIONS)}") from None
    return factory(channels, **options)
