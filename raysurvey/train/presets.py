"""Training presets: each paper's optimiser, learning rate, batch size, epochs and early
stopping, so ``--preset`` reproduces a published recipe and flags override it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainPreset:
    optimizer: str  # adam | adamw | adagrad | sgd
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    patience: int | None  # epochs without validation-loss improvement before stopping
    balance_to: int | None  # replicate training classes up to this count
    source: str


PRESETS: dict[str, TrainPreset] = {
    # audio-fusion code: Adam 5e-4, batch 256, 500 epochs, no early stop, 6000 per class
    "audio_fusion": TrainPreset(
        "adam", 5e-4, 0.0, 256, 500, None, 6000, "audio-fusion paper + code"
    ),
    # Spectromer: AdamW 1e-5, weight decay 0.01, batch 64, >= 30 epochs, best checkpoint
    "spectromer": TrainPreset("adamw", 1e-5, 0.01, 64, 30, None, None, "Spectromer section 5"),
    # MAC-Net Table 3 and DRC-Net Table 2: AdaGrad 1e-3, batch 4, 300 epochs, patience 50
    "macnet": TrainPreset("adagrad", 1e-3, 0.0, 4, 300, 50, None, "MAC-Net Table 3"),
    "drcnet": TrainPreset("adagrad", 1e-3, 0.0, 4, 300, 50, None, "DRC-Net Table 2"),
}


def get_preset(name: str) -> TrainPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
