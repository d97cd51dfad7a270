"""Training presets: each paper's optimiser, learning rate, batch size, epochs, early
stopping and class balancing, so ``--preset`` reproduces a published recipe and flags
override it; ``default`` is raysurvey's own, sized for any release.

``default`` (what ``jobs/train.py`` uses without ``--preset``) takes the audio-fusion
optimiser at a batch and a length that suit a few hundred spectra as well as millions,
balances the training split only up to its largest class (``largest``), so a release
never grows by more than its number of classes, and re-estimates BatchNorm statistics
after each epoch (a few epochs' running statistics lag the weights). The paper presets replicate
exactly as published when asked for by name: ``audio_fusion`` replicates every
training class to 6000 rows (twenty-fold on an 800-spectrum release).

The 2D presets carry their task too: ``macnet`` trains galaxy/QSO/star (class3) with
the QSOs weighted 3 (the paper's data set has 1223 galaxies, 466 QSOs, 1202 stars: a
1:3:1 weighting of GALAXY:QSO:STAR evens out their contributions to the loss);
``drcnet`` trains F/G/K stars at S/N_r > 30 and reports accuracy in the S/N_r bins
of DRC-Net's Figure 7 (< 10, 10-20, 20-30, > 30).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: DRC-Net's S/N bins (its Figure 7): < 10, 10-20, 20-30, > 30.
DRCNET_SNR_BINS = (0.0, 10.0, 20.0, 30.0, np.inf)


@dataclass(frozen=True)
class TrainPreset:
    optimizer: str  # adam | adamw | adagrad | sgd
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    patience: int | None  # epochs without validation-loss improvement before stopping
    balance_to: int | str | None  # replicate training classes to N rows, "largest" or None
    source: str
    model: str | None = None  # the paper's model, when --model is not given
    labels: str | None = None  # the paper's label set, when --labels is not given
    min_snr: float | None = None  # the paper's training S/N cut ...
    snr_column: str = "snr_i"  # ... on this manifest column (also the evaluation bins')
    class_weights: dict = field(default_factory=dict)  # label -> loss weight (1 if absent)
    snr_bins: tuple[float, ...] | None = None  # evaluation bins (None: metrics.SNR_BINS)
    recalibrate_bn: bool = False  # BatchNorm statistics re-estimated each epoch (dropout-BN)


#: ``balance_to`` of the default preset: every training class replicated up to the
#: largest class's count (bounded by the release: at most classes x largest rows).
BALANCE_LARGEST = "largest"
DEFAULT_PRESET = "default"

#: MAC-Net Table 3 and DRC-Net Table 2: AdaGrad 1e-3, batch 4, 300 epochs, patience 50.
_ADAGRAD_2D = dict(
    optimizer="adagrad", lr=1e-3, weight_decay=0.0, batch_size=4, epochs=300, patience=50,
    balance_to=None,
)  # fmt: skip

PRESETS: dict[str, TrainPreset] = {
    # raysurvey's default: the audio-fusion optimiser, batch 32, 20 epochs, balanced up
    # to the largest class; BatchNorm statistics re-estimated after each epoch, so that
    # short runs evaluate with statistics that fit their weights (docs/training.md)
    DEFAULT_PRESET: TrainPreset(
        "adam",
        5e-4,
        0.0,
        32,
        20,
        None,
        BALANCE_LARGEST,
        "raysurvey default",
        recalibrate_bn=True,
    ),
    # audio-fusion code: Adam 5e-4, batch 256, 500 epochs, no early stop, 6000 per class
    "audio_fusion": TrainPreset(
        "adam", 5e-4, 0.0, 256, 500, None, 6000, "audio-fusion paper + code"
    ),
    # Spectromer: AdamW 1e-5, weight decay 0.01, batch 64, >= 30 epochs, best checkpoint
    "spectromer": TrainPreset("adamw", 1e-5, 0.01, 64, 30, None, None, "Spectromer section 5"),
    "macnet": TrainPreset(
        **_ADAGRAD_2D,
        source="MAC-Net Table 3",
        model="macnet",
        labels="class3",
        class_weights={"GALAXY": 1.0, "QSO": 3.0, "STAR": 1.0},
        recalibrate_bn=True,  # dropout 0.5 before every arm BatchNorm (train/batchnorm.py)
    ),
    "drcnet": TrainPreset(
        **_ADAGRAD_2D,
        source="DRC-Net Table 2",
        model="drcnet",
        labels="fgk",
        min_snr=30.0,
        snr_column="snr_r",
        snr_bins=DRCNET_SNR_BINS,
    ),
}


def get_preset(name: str) -> TrainPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def weight_vector(weights: dict, label_names) -> tuple[float, ...] | None:
    """Per-class loss weights in label order (None when all are 1); unknown labels are
    refused so a typo cannot silently weight nothing."""
    if not weights:
        return None
    unknown = sorted(set(weights) - set(label_names))
    if unknown:
        raise ValueError(f"class weights for unknown labels {unknown}; labels: {list(label_names)}")
    vector = tuple(float(weights.get(name, 1.0)) for name in label_names)
    if any(not w > 0 for w in vector):
        raise ValueError(
            f"class weights must be > 0, got {dict(zip(label_names, vector, strict=True))}"
        )
    return None if all(w == 1.0 for w in vector) else vector


def balance_target(balance_to: int | str | None, counts: dict[str, int]) -> int | None:
    """The row count each training class is replicated up to (None: no balancing).

    ``balance_to`` is a count, ``"largest"`` (the largest class's count in ``counts``,
    the training split's rows per class) or None / 0 (off).
    """
    if balance_to in (None, 0, "0", "none", "off"):
        return None
    if balance_to == BALANCE_LARGEST:
        return max(counts.values(), default=0) or None
    try:
        target = int(balance_to)
    except (TypeError, ValueError):
        raise ValueError(
            f"balance_to must be a row count, {BALANCE_LARGEST!r} or 0, not {balance_to!r}"
        ) from None
    if target < 0:
        raise ValueError(f"balance_to must be >= 0, not {target}")
    return target or None


def describe_balance(before: dict[str, int], after: dict[str, int]) -> str:
    """One line: what balancing did to each class of the training split."""
    parts = []
    for label, n in before.items():
        m = after.get(label, 0)
        parts.append(f"{label} {n} -> {m} rows (x{m / n:.1f})" if m != n else f"{label} {n} kept")
    total, grown = sum(before.values()), sum(after.values())
    growth = f" (x{grown / total:.1f})" if total and grown != total else ""
    return ", ".join(parts) + f"; {total} -> {grown} training rows an epoch{growth}"
