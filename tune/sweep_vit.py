"""Search the ViT's image encoding, learning rate and weight decay (Spectromer Table 2).

    python tune/sweep_vit.py --manifest REL/manifest.parquet --storage .cache/sweeps \\
        --per-class 100 --epochs 4 --num-samples 12
    ray job submit --working-dir . -- python tune/sweep_vit.py ... --model vit \\
        --pretrained facebook/dino-vitb16 --use-gpu --num-samples 48 --storage s3://...

    python tune/sweep_vit.py ... --pretraining none,.cache/dino/dino-synth   # + DINO

Optuna samples the encoding (simple, overlap, map2d), the pretraining (``--pretraining``:
``none`` = random init, or ``save_pretrained`` directories such as
``jobs/pretrain_dino.py --out`` writes, or hub ids) and a log-uniform learning rate
and weight decay; ASHA stops poor trials after their first epochs. Each (encoding,
pretraining) pair is one choice, named ``map2d`` (random init) or ``map2d+NAME``
(NAME: the directory's base name), so the table has one row per pair (mean +- std
over its finished trials). ``--pretrained ID_OR_DIR`` alone starts every choice from
those weights, as before. On a CPU the model is ``vit_tiny`` (or ``vit_small``); on
GPUs the DINO ViT-B/16 (``--model vit``).
"""

from __future__ import annotations

import os

from raysurvey.driver_exit import run_driver
from raysurvey.train.sweep import Choice
from raysurvey.train.sweep_cli import run_from_args, spec_from_args, sweep_parser

ENCODINGS = ("simple", "overlap", "map2d")
#: Spectromer's Table 2 ranks map2d first; its figures are for other data and tasks.


NO_PRETRAINING = "none"


def pretraining_label(source: str | None) -> str | None:
    """The choice-name suffix of a pretraining source (None: random init)."""
    if source is None or source == NO_PRETRAINING:
        return None
    return os.path.basename(source.rstrip("/")) or source


def choices(
    model: str,
    pretrained: str | None = None,
    pretraining: tuple[str, ...] | None = None,
    encodings: tuple[str, ...] = ENCODINGS,
) -> list[Choice]:
    """One choice per (encoding, pretraining source). ``pretraining``: sources searched
    (``"none"`` = random init, a directory or hub id); None: ``pretrained`` alone."""
    sources = pretraining if pretraining else (pretrained or NO_PRETRAINING,)
    out = []
    for source in sources:
        label = pretraining_label(source)
        config = {"pretrained": source} if label else {}
        for e in encodings:
            name = e if label is None or not pretraining else f"{e}+{label}"
            out.append(Choice(name=name, model=model, model_config=config | {"modality": e}))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise SystemExit(f"sweep_vit: two pretraining sources share a name: {names}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = sweep_parser(__doc__, "vit")
    parser.add_argument("--model", default="vit_tiny", choices=["vit_tiny", "vit_small", "vit"])
    parser.add_argument("--pretrained", help="hub id or local directory (from_pretrained)")
    parser.add_argument(
        "--pretraining",
        help="comma-separated pretraining sources to search: none (random init), "
        "save_pretrained directories (jobs/pretrain_dino.py --out) or hub ids",
    )
    parser.add_argument("--encodings", default=",".join(ENCODINGS))
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
        choices(
            args.model,
            args.pretrained,
            tuple(v.strip() for v in args.pretraining.split(",")) if args.pretraining else None,
            tuple(v.strip() for v in args.encodings.split(",")),
        ),
        search=search,
        num_samples=args.num_samples,
        preset="spectromer",
    )
    return run_from_args(args, spec)


if __name__ == "__main__":
    run_driver(main)
