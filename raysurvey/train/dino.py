"""DINO self-distillation for the ViT: projection head, loss with centring, EMA teacher,
schedules (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers", the method behind ``facebook/dino-vitb16``).

A student ViT sees every view of a spectrum (2 global + several local crops,
``dino_views.py``); a teacher with the same architecture sees only the global views
and is an exponential moving average of the student. The student's softmax (at
``student_temp``) is pulled towards the teacher's centred and sharpened softmax (at a
lower, warmed-up ``teacher_temp``) by a cross-entropy over every (teacher view,
student view) pair of different views. Centring subtracts an EMA of the teacher's
mean output; together with sharpening it keeps the teacher from collapsing to one
dimension or to the uniform distribution. Pure torch (no Ray): the Ray Train wiring
is ``dino_run.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysurvey.models import create_model


@dataclass(frozen=True)
class HeadConfig:
    """DINO's projection head, scaled down: the paper uses 2048 hidden, 256 bottleneck
    and 65536 outputs for ViT-S/B; a few thousand spectra want far fewer prototypes."""

    out_dim: int = 1024
    hidden_dim: int = 512
    bottleneck_dim: int = 128
    n_layers: int = 3
    norm_last_layer: bool = True  # weight-norm gain fixed to 1 (the paper's stable choice)


class DINOHead(nn.Module):
    """MLP (GELU) -> l2-normalised bottleneck -> weight-normed linear layer to ``out_dim``."""

    def __init__(self, in_dim: int, cfg: HeadConfig | None = None):
        super().__init__()
        cfg = cfg or HeadConfig()
        dims = [in_dim] + [cfg.hidden_dim] * (cfg.n_layers - 1) + [cfg.bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        last = nn.Linear(cfg.bottleneck_dim, cfg.out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        gain = self.last_layer.parametrizations.weight.original0  # (out_dim, 1)
        with torch.no_grad():
            gain.fill_(1.0)
        gain.requires_grad_(not cfg.norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1, p=2)  # (B, bottleneck)
        return self.last_layer(x)  # (B, out_dim)


class DINOModel(nn.Module):
    """A registered ViT (``num_classes=None``: the CLS embedding) followed by a DINO head."""

    def __init__(self, model: str, model_config: dict, head: HeadConfig | None = None):
        super().__init__()
        self.backbone = create_model(model, **(dict(model_config) | {"num_classes": None}))
        self.head = DINOHead(self.backbone.embed_dim, head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] images in [0, 1] -> head outputs [B, out_dim]."""
        return self.head(self.backbone(x))


class DINOLoss(nn.Module):
    """Cross-entropy of the student's views against the centred, sharpened teacher's.

    ``center`` is a buffer (saved with checkpoints): after each step
    ``center <- m * center + (1 - m) * mean(teacher outputs)`` with the mean taken over
    every worker's batch (``update_center``).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self, student_out: torch.Tensor, teacher_out: torch.Tensor, n_views: int, teacher_temp
    ) -> torch.Tensor:
        """``student_out`` [n_views * B, K], ``teacher_out`` [n_global * B, K], both view-major."""
        student = (student_out.float() / self.student_temp).chunk(n_views)
        n_global = teacher_out.shape[0] // student[0].shape[0]
        teacher = F.softmax((teacher_out.float() - self.center) / teacher_temp, dim=-1)
        teacher = teacher.detach().chunk(n_global)
        total, terms = 0.0, 0
        for iq, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v == iq:  # the same view seen by both: no information to distil
                    continue
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                terms += 1
        return total / terms

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_sum = teacher_out.float().sum(dim=0, keepdim=True)
        n = torch.tensor(float(teacher_out.shape[0]), device=batch_sum.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_sum)
            torch.distributed.all_reduce(n)
        m = self.center_momentum
        self.center.mul_(m).add_(batch_sum / n, alpha=1 - m)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter
    (buffers are copied: the ViT has none that train)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach().to(t.dtype), alpha=1 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


def cosine_schedule(
    base: float, final: float, total_steps: int, warmup_steps: int = 0, warmup_start: float = 0.0
) -> np.ndarray:
    """Per-step values: linear warm-up from ``warmup_start`` to ``base`` over
    ``warmup_steps``, then a half cosine from ``base`` down (or up) to ``final``."""
    warmup_steps = min(warmup_steps, total_steps)
    warm = np.linspace(warmup_start, base, warmup_steps, endpoint=False)
    n = total_steps - warmup_steps
    steps = np.arange(n)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * steps / max(n, 1)))
    return np.concatenate([warm, cosine])


def teacher_temp_schedule(
    warmup_temp: float, temp: float, warmup_epochs: int, epochs: int
) -> np.ndarray:
    """Per-epoch teacher temperature: linear from ``warmup_temp`` to ``temp`` over
    ``warmup_epochs``, then constant (a too-sharp teacher early on makes training
    unstable, the paper's section 5.2 and appendix)."""
    warmup_epochs = min(warmup_epochs, epochs)
    warm = np.linspace(warmup_temp, temp, warmup_epochs)
    return np.concatenate([warm, np.full(epochs - warmup_epochs, temp)])


def dino_forward(
    student: nn.Module,
    teacher: nn.Module,
    loss_fn: DINOLoss,
    views: list[torch.Tensor],
    n_global: int,
    teacher_temp: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DINO forward: the teacher on the ``n_global`` first views only, the student on
    every view. Returns (loss, teacher outputs for ``update_center``)."""
    with torch.no_grad():
        teacher_out = teacher(torch.cat(views[:n_global]))  # (n_global * B, K)
    student_out = student(torch.cat(views))  # (n_views * B, K)
    loss = loss_fn(student_out, teacher_out, len(views), teacher_temp)
    return loss, teacher_out


def cancel_last_layer_grads(model: nn.Module) -> None:
    """Freeze the head's last layer (the paper does so in the first epoch)."""
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


def clip_gradients(model: nn.Module, clip: float) -> None:
    """Per-parameter gradient norm clipping, as the reference DINO training does."""
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.detach().norm(2)
            scale = clip / (norm + 1e-6)
            if scale < 1:
                p.grad.mul_(scale)


def param_groups(model: nn.Module) -> list[dict]:
    """Weight decay on weight matrices only (not biases, norms, the head's gain)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def entropy(probs: torch.Tensor) -> float:
    """Mean entropy (nats) of rows of probabilities: a collapsed teacher has ~0."""
    p = probs.float().clamp_min(1e-12)
    return float(-(p * p.log()).sum(dim=-1).mean())


__all__ = [
    "DINOHead",
    "DINOLoss",
    "DINOModel",
    "HeadConfig",
    "cancel_last_layer_grads",
    "clip_gradients",
    "cosine_schedule",
    "dino_forward",
    "ema_update",
    "entropy",
    "param_groups",
    "teacher_temp_schedule",
]
