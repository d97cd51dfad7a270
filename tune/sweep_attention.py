"""Sweep spec_cnn's attention module over seeds (the audio-fusion paper's Table 3).

    python tune/sweep_attention.py --manifest REL/manifest.parquet --storage .cache/sweeps \\
        --per-class 200 --epochs 4 --seeds 0,1,2
    ray job submit --working-dir . -- python tune/sweep_attention.py ... \\
        --storage s3://bucket/sweeps --use-gpu

One trial per attention x seed (a seed changes the split and the initialisation), each
a Ray Train run on the sweep's precomputed flux1d features, scored on its test split.
Writes STORAGE/attention/table.{csv,md}, chart.png, trials.csv and best_bundle/.
"""

from __future__ import annotations

from raysurvey.driver_exit import run_driver
from raysurvey.models.attention import ATTENTIONS
from raysurvey.train.sweep import Choice
from raysurvey.train.sweep_cli import run_from_args, spec_from_args, sweep_parser

#: Table 3 of the audio-fusion paper (one run each; CBAM is not in it).
PAPER = {
    "none": "87.17",
    "se": "88.54",
    "eca": "88.13",
    "bam": "89.13",
    "gct": "89.19",
    "coord": "89.37",
    "criss_cross": "88.41",
}


def choices() -> list[Choice]:
    return [
        Choice(name=a, model="spec_cnn", model_config={"attention": a}, paper=PAPER.get(a))
        for a in ATTENTIONS
    ]


def main(argv: list[str] | None = None) -> int:
    args = sweep_parser(__doc__, "attention").parse_args(argv)
    spec = spec_from_args(args, choices(), paper_source="Table 3")
    return run_from_args(args, spec)


if __name__ == "__main__":
    run_driver(main)
