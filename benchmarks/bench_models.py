"""Model zoo: parameter counts and CPU forward time per spectrum, batched vs one by one.

For every model (full size, eval mode, ``torch.inference_mode``) it measures the
forward time per spectrum at batch ``--batch`` and at batch 1 in the same run, and
prints the ratio (what batching buys a batch-inference job on this hardware). On a
CUDA machine it also measures bf16 autocast throughput (spectra/s) of each model.
CPU figures use ``--threads`` torch threads (default 1: per core).

    .venv/bin/python benchmarks/bench_models.py [--threads 1] [--batch 16]
        [--models spec_cnn,fusion] [--min-seconds 2]
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402

from raysurvey.models import create_model, example_inputs, run_model  # noqa: E402

# name, create_model kwargs, what it reads (for the table)
MODELS = {
    "spec_cnn": ("spec_cnn", {}, "flux1d 1 x 3700"),
    "spec_cnn (none)": ("spec_cnn", {"attention": "none"}, "flux1d 1 x 3700"),
    "epsanet50": ("epsanet50", {"num_classes": 8}, "line512 3 x 224 x 224"),
    "audio_cnn (mel)": ("audio_cnn", {"feature": "mel"}, "mel 64 x 62"),
    "audio_cnn (mfcc)": ("audio_cnn", {"feature": "mfcc"}, "mfcc 30 x 93"),
    "audio_cnn (lfcc)": ("audio_cnn", {"feature": "lfcc"}, "lfcc 30 x 54"),
    "image_cnn": ("image_cnn", {}, "simple 3 x 224 x 224"),
    "vit": ("vit", {}, "map2d 3 x 224 x 224"),
    "vit_small": ("vit_small", {}, "map2d 3 x 224 x 224"),
    "fusion": ("fusion", {}, "flux1d + line512 + mel + mfcc + lfcc"),
    "fusion_cpu": ("fusion_cpu", {}, "flux1d + simple + mel"),
}


def seconds_per_call(fn, min_seconds: float) -> float:
    fn()  # warm-up (allocator, lazy init)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 2:
            return elapsed / calls


def cpu_row(label: str, batch: int, min_seconds: float) -> dict:
    name, kwargs, reads = MODELS[label]
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    params = sum(p.numel() for p in model.parameters())
    batched = example_inputs(model, batch)
    single = example_inputs(model, 1)
    with torch.inference_mode():
        t_batch = seconds_per_call(lambda: run_model(model, batched), min_seconds) / batch
        t_single = seconds_per_call(lambda: run_model(model, single), min_seconds)
    return dict(
        label=label, reads=reads, params=params, ms_batch=t_batch * 1e3, ms_single=t_single * 1e3
    )


def gpu_throughput(label: str, batch: int, min_seconds: float) -> float:
    name, kwargs, _ = MODELS[label]
    model = create_model(name, **kwargs).eval().cuda()
    x = {k: v.cuda() for k, v in example_inputs(model, batch).items()}

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            run_model(model, x)
        torch.cuda.synchronize()

    with torch.inference_mode():
        return batch / seconds_per_call(step, min_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--min-seconds", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {list(MODELS)}")

    print(f"CPU, {args.threads} thread(s), fp32, eval; batch {args.batch} vs batch 1")
    print("| model | reads | parameters | ms/spectrum (batch) | ms/spectrum (batch 1) | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for label in labels:
        r = cpu_row(label, args.batch, args.min_seconds)
        print(
            f"| {r['label']} | {r['reads']} | {r['params'] / 1e6:.2f} M | {r['ms_batch']:.2f} | "
            f"{r['ms_single']:.2f} | {r['ms_single'] / r['ms_batch']:.1f}x |",
            flush=True,
        )
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
        print(f"\n{device}, bf16 autocast, batch {args.gpu_batch}")
        print("| model | spectra/s |")
        print("|---|---:|")
        for label in labels:
            rate = gpu_throughput(label, args.gpu_batch, args.min_seconds)
            print(f"| {label} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
