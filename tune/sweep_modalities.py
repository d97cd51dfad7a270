"""Sweep the fusion model's inputs over seeds (the audio-fusion paper's Table 4).

    python tune/sweep_modalities.py --manifest REL/manifest.parquet --storage .cache/sweeps \\
        --per-class 200 --epochs 4 --seeds 0,1,2
    ray job submit --working-dir . -- python tune/sweep_modalities.py ... \\
        --image-encoder epsanet50 --use-gpu --storage s3://bucket/sweeps

Subsets: flux1d; image (the `simple` plot); mel; mfcc; lfcc; flux1d+image;
flux1d+audio (mel, mfcc, lfcc); all. The same fusion model (one encoder per input,
concatenated, one linear layer) for every subset, so only the inputs differ. On a
CPU the image encoder is the small image CNN; the paper's EPSANet-50 is
``--image-encoder epsanet50`` on GPUs.
"""

from __future__ import annotations

from raysurvey.driver_exit import run_driver
from raysurvey.train.sweep import Choice
from raysurvey.train.sweep_cli import run_from_args, spec_from_args, sweep_parser

AUDIO = ["mel", "mfcc", "lfcc"]
#: choice -> (inputs, Table 4 of the audio-fusion paper, mean +- std over ten seeds)
SUBSETS = {
    "flux1d": (["flux1d"], "89.75 ± 0.28"),
    "image": (["simple"], "90.89 ± 0.28"),
    "mel": (["mel"], "90.23 ± 0.36"),
    "mfcc": (["mfcc"], "83.87 ± 0.35"),
    "lfcc": (["lfcc"], "85.07 ± 0.38"),
    "flux1d+image": (["flux1d", "simple"], "91.26 ± 0.35"),
    "flux1d+audio": (["flux1d", *AUDIO], "89.09 ± 0.43"),
    "all": (["flux1d", "simple", *AUDIO], "91.79 ± 0.11"),
}


def choices(image_encoder: str = "image_cnn") -> list[Choice]:
    return [
        Choice(
            name=name,
            model="fusion",
            model_config={"modalities": inputs, "image_encoder": image_encoder},
            paper=paper,
        )
        for name, (inputs, paper) in SUBSETS.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = sweep_parser(__doc__, "modalities")
    parser.add_argument("--image-encoder", default="image_cnn", help="e.g. epsanet50 on GPUs")
    args = parser.parse_args(argv)
    spec = spec_from_args(args, choices(args.image_encoder), paper_source="Table 4")
    return run_from_args(args, spec)


if __name__ == "__main__":
    run_driver(main)
