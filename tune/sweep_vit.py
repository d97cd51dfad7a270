"""Search the ViT's image encoding, learning rate and weight decay (Spectromer Table 2).

    python tune/sweep_vit.py --manifest REL/manifest.parquet --storage .cache/sweeps \\
        --per-class 100 --epochs 4 --num-samples 12
    ray job submit --working-dir . -- python tune/sweep_vit.py ... --model vit \\
        --pretrained facebook/dino-vitb16 --use-gpu --num-samples 48 --storage s3://...

Optuna samples the encoding (simple, overlap, map2d) and a log-uniform learning rate
and weight decay; ASHA stops poor trials after their first epochs. On a CPU the model
is ``vit_tiny`` (or ``vit_small``); on GPUs the DINO ViT-B/16 (``--model vit``).
The table has one row per encoding (mean +- std over its finished trials).
"""

from __future__ import annotations

import sys

from raysurvey.train.sweep import Choice
from raysurvey.train.sweep_cli import run_from_args, spec_from_args, sweep_parser

ENCODINGS = ("simple", "overlap", "map2d")
#: Spectromer's Table 2 ranks map2d first; its figures are for other data and tasks.


def choices(model: str, pretrained: str | None) -> list[Choice]:
    config = {"pretrained": pretrained} if pretrained else {}
    return [Choice(name=e, model=model, model_config=config | {"modality": e}) for e in ENCODINGS]


def main(argv: list[str] | None = None) -> int:
    parser = sweep_parser(__doc__, "vit")
    parser.add_argument("--model", default="vit_tiny", choices=["vit_tiny", "vit_small", "vit"])
    parser.add_argument("--pretrained", help="hub id or local directory (from_pretrained)")
    parser.add_argument("--num-samples", type=int, default=12, help="trials Optuna draws")
    parser.add_argument("--lr-range", default="1e-5,1e-3")
    parser.add_argument("--wd-range", default="1e-4,1e-1")
    args = parser.parse_args(argv)
    search = {
        "lr": [float(v) for v in args.lr_range.split(",")],
        "weight_decay": [float(v) for v in args.wd_range.split(",")],
    }
    spec = spec_from_args(
        args,
        choices(args.model, args.pretrained),
        search=search,
        num_samples=args.num_samples,
        preset="spectromer",
    )
    return run_from_args(args, spec)


if __name__ == "__main__":
    sys.exit(main())
