"""Training defaults that fit any release: the ``default`` preset, balancing only as far
as asked (``largest`` or a count), and the lines a run prints first. No Ray here."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raysurvey.train.data import TrainingTables
from raysurvey.train.presets import (
    BALANCE_LARGEST,
    DEFAULT_PRESET,
    PRESETS,
    balance_target,
    describe_balance,
)
from raysurvey.train.run import RunSpec, _balance


def test_the_default_preset_is_sized_for_any_release_and_the_papers_stay_as_published():
    default = PRESETS[DEFAULT_PRESET]
    assert RunSpec(manifest="m", model="spec_cnn", storage="s", name="n").preset == "default"
    assert (default.optimizer, default.lr, default.batch_size, default.epochs) == (
        "adam", 5e-4, 32, 20
    )  # fmt: skip
    assert default.balance_to == BALANCE_LARGEST and default.recalibrate_bn
    assert PRESETS["audio_fusion"].balance_to == 6000  # the paper's, only when named


def test_balance_target():
    counts = {"GALAXY": 120, "QSO": 80, "STAR": 300}
    assert balance_target(BALANCE_LARGEST, counts) == 300
    assert balance_target(6000, counts) == 6000
    assert balance_target("150", counts) == 150
    for off in (None, 0, "0"):
        assert balance_target(off, counts) is None
    assert balance_target(BALANCE_LARGEST, {}) is None
    with pytest.raises(ValueError, match="row count, 'largest' or 0"):
        balance_target("most", counts)
    with pytest.raises(ValueError, match=">= 0"):
        balance_target(-5, counts)


def test_describe_balance():
    line = describe_balance({"GALAXY": 120, "STAR": 300}, {"GALAXY": 300, "STAR": 300})
    assert line == (
        "GALAXY 120 -> 300 rows (x2.5), STAR 300 kept; 420 -> 600 training rows an epoch (x1.4)"
    )


def tables(labels: list[str]) -> TrainingTables:
    train = pa.table({"uri": [f"f{i}" for i in range(len(labels))], "label_name": labels})
    values, n = np.unique(labels, return_counts=True)
    return TrainingTables(
        splits={"train": train},
        label_names=sorted(set(labels)),
        target_normalisation=None,
        excluded=0,
        counts={"train": {str(v): int(c) for v, c in zip(values, n, strict=True)}},
    )


def test_largest_replicates_the_small_classes_up_to_the_largest_and_no_further():
    data = tables(["STAR"] * 6 + ["QSO"] * 2 + ["GALAXY"] * 4)
    line = _balance(data, BALANCE_LARGEST, seed=0)
    assert data.counts["train"] == {"GALAXY": 6, "QSO": 6, "STAR": 6}
    assert data.splits["train"].num_rows == 18
    uris = data.splits["train"].column("uri").to_pylist()
    assert sorted(set(uris)) == sorted(f"f{i}" for i in range(12))  # copies of real rows only
    assert uris.count("f6") == uris.count("f7") == 3  # each QSO three times
    assert line == (
        "to 6 rows a class (largest): GALAXY 4 -> 6 rows (x1.5), QSO 2 -> 6 rows (x3.0), "
        "STAR 6 kept; 12 -> 18 training rows an epoch (x1.5)"
    )


def test_balancing_off_leaves_the_split_and_says_so():
    data = tables(["STAR"] * 3 + ["QSO"])
    assert _balance(data, 0, seed=0) == "off (QSO 1, STAR 3 training rows)"
    assert data.splits["train"].num_rows == 4
