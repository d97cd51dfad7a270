"""spec_cnn: the eight-layer 1D CNN over 1 x 3700 flux of the audio-fusion paper.

Follows the authors' code (../shared/DESIGN.md, "What the published code actually
does"): eight blocks of convolution (kernels 1, 2, 3, 4, 5, 7, 8, 9; channels 10 to 60;
no padding) + BatchNorm + LeakyReLU + max-pool of 2 with strides alternating 1 and 2,
which leaves a 60 x 219 map; an attention module on that map; then flatten 13140 ->
(LeakyReLU) -> 1024 -> 256. The 256-d vector is the branch embedding the fusion model
concatenates; as a classifier a linear head maps it to ``num_classes``. The authors
wrote Conv2d with (1, k) kernels on [B, 1, 1, 3700]; Conv1d on [B, 1, 3700] is the same
operation with the same parameters.

Inference on CPU: ``prepare_inference`` (called by ``load_bundle``) builds a folded
copy of the convolution stack, each Conv1d + BatchNorm1d merged into one Conv2d with a
(1, k) kernel that runs channels-last (oneDNN's fast layout for these narrow layers).
It is used only in eval mode without autograd, leaves the parameters and state dict
untouched, and is dropped by ``train()``; logits agree with the plain path to float32
rounding (tests/test_infer_speed_paths.py, docs/benchmarks.md for the speed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

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


def fold_batchnorm(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [out, in, k], bias [out]) of ``conv`` followed by ``bn`` in eval mode.

    bn(conv(x)) = s * (W x + b - mean) + beta with s = gamma / sqrt(var + eps), so the
    folded weight is s * W and the bias s * (b - mean) + beta (computed in float64).
    """
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0])
    b = b.to(w.device, torch.float64)
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    weight = w * scale[:, None, None]
    bias = (b - mean) * scale + beta
    return weight.to(conv.weight.dtype), bias.to(conv.weight.dtype)


class FoldedFeatures(nn.Module):
    """Inference-only copy of ``SpecCNN.features``: (folded conv, LeakyReLU, max-pool)
    per block, on [B, C, 1, L] maps stored channels-last ([B, 1, L, C] in memory)."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        blocks = list(features)
        convs = []
        self.slopes: list[float] = []
        self.strides: list[int] = []
        for i in range(0, len(blocks), 4):
            conv, bn, act, pool = blocks[i : i + 4]
            weight, bias = fold_batchnorm(conv, bn)
            conv2d = nn.Conv2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]))
            conv2d.to(weight.device)
            with torch.no_grad():
                conv2d.weight.copy_(weight.unsqueeze(2))  # (out, in, 1, k)
                conv2d.bias.copy_(bias)
            convs.append(conv2d.to(memory_format=torch.channels_last).eval())
            self.slopes.append(float(act.negative_slope))
            self.strides.append(int(pool.stride))
        self.convs = nn.ModuleList(convs)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1, 1)  # (B, L, C=1): channels last
        for conv, slope, stride in zip(self.convs, self.slopes, self.strides, strict=True):
            y = conv(h.transpose(1, 2).unsqueeze(2))  # (B, C, 1, L), stored as (B, L, C)
            h = y.squeeze(2).transpose(1, 2)  # (B, L, C), a view
            n = (h.shape[1] - 2) // stride + 1
            # max-pool of 2 as one elementwise max of two shifted views (channels-last
            # max_pool2d is several times slower); pooling first is exact because
            # LeakyReLU is monotonic, and it leaves half the values to activate.
            h = torch.maximum(h[:, 0 : stride * n : stride], h[:, 1 : stride * n + 1 : stride])
            h = F.leaky_relu(h, slope, inplace=True)
        return h.transpose(1, 2).contiguous()  # (B, C, L) in the plain layout


def fold_linears(first: nn.Linear, second: nn.Linear) -> nn.Linear:
    """One Linear equal to ``second(first(x))`` (no activation between them):
    W = W2 W1, b = W2 b1 + b2, computed in float64. For spec_cnn's 13140 -> 1024 ->
    256 embedding that is a quarter of the multiply-adds."""
    w1, w2 = first.weight.detach().double(), second.weight.detach().double()
    b1 = first.bias.detach().double() if first.bias is not None else torch.zeros(w1.shape[0])
    b2 = second.bias.detach().double() if second.bias is not None else torch.zeros(w2.shape[0])
    out = nn.Linear(first.in_features, second.out_features).to(first.weight.device)
    with torch.no_grad():
        out.weight.copy_((w2 @ w1).to(first.weight.dtype))
        out.bias.copy_((w2 @ b1.to(w2.device) + b2.to(w2.device)).to(first.weight.dtype))
    return out.eval().requires_grad_(False)


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
        # Inference copies (FoldedFeatures, folded embedding Linear), kept in a plain
        # list: not submodules, so not in state_dict or parameters().
        self._folded: list[nn.Module] = []

    def prepare_inference(self) -> None:
        """Build the folded inference path from the current weights (call after loading
        weights and moving the model; ``train()`` drops it): the convolution stack
        folded and channels-last, and the embedding's two Linear layers (no activation
        between them) multiplied into one."""
        lrelu, _, first, second = self.embed
        self._folded = [FoldedFeatures(self.features), fold_linears(first, second)]
        self._embed_slope = float(lrelu.negative_slope)

    def train(self, mode: bool = True):
        if mode:
            self._folded = []
        return super().train(mode)

    def _use_folded(self, x: torch.Tensor) -> bool:
        """Eval mode, no autograd, and the input where the folded weights are."""
        if not self._folded or self.training or torch.is_grad_enabled():
            return False
        weight = self._folded[1].weight
        return x.device == weight.device and x.dtype == weight.dtype

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, L] (or [B, L]) flux -> [B, embed_dim]."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.config.input_length:
            raise ValueError(
                f"spec_cnn expects flux of shape [B, 1, {self.config.input_length}], "
                f"got {list(x.shape)}"
            )
        if self._use_folded(x):
            features, embed = self._folded
            x = self.attention(features(x)).flatten(1)  # (B, 60 * 219)
            return embed(F.leaky_relu(x, self._embed_slope))  # dropout: identity in eval
        x = self.attention(self.features(x))  # (B, 60, 219)
        return self.embed(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.forward_features(x)
        return self.head(z) if self.head is not None else z


@register_model("spec_cnn")
def spec_cnn(**overrides) -> SpecCNN:
    """The authors' 1D CNN, CoordAtt by default; ``attention=`` any of ATTENTIONS."""
    return SpecCNN(build_config(SpecCNNConfig, overrides))
