"""Training: splits, presets, the papers' metrics, the Ray Train loop and its driver.

``fit(RunSpec(...))`` is what ``jobs/train.py`` runs; the metrics and splits are pure
numpy and used by evaluation too.
"""

from raysurvey.train.metrics import (
    accuracy_by_snr,
    catastrophic_rate,
    classification_metrics,
    confusion_matrix,
    regression_metrics,
)
from raysurvey.train.presets import PRESETS, get_preset
from raysurvey.train.splits import assign_splits, balance_by_replication

__all__ = [
    "PRESETS",
    "accuracy_by_snr",
    "assign_splits",
    "balance_by_replication",
    "catastrophic_rate",
    "classification_metrics",
    "confusion_matrix",
    "get_preset",
    "regression_metrics",
]
