"""GPU pretraining throughput: fp32 eager vs bf16 + channels_last (+ torch.compile).

For each variant it runs the real training step (``stages.pretrain.session.prepare`` and
``train_step``: DataLoader workers over the memory-mapped cache, model, losses, AdamW)
and prints samples/s, peak GPU memory and the fraction of step time spent waiting for
data, with the fp32-eager baseline measured in the same run (ratio). Targets on a GPU:
>= 3x fp32 eager, data wait < 5 %.

    python benchmarks/gpu_pretrain.py --cache CACHE_DIR              # base CNN preset on CUDA
    python benchmarks/gpu_pretrain.py --cache CACHE_DIR --encoder vit
    python benchmarks/gpu_pretrain.py --device cpu                   # smoke run of the same code
Without ``--cache`` a small synthetic cache is built first (synth -> segment -> parse-reports -> cache).
"""
from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import torch
from bench_pretrain_cpu import build_synth_cache

from stages.pretrain import make_config
from stages.pretrain.distributed import DistInfo
from stages.pretrain.session import prepare
from stages.pretrain.train import train_step

VARIANTS = {
    "fp32 eager": {"precision": "fp32", "channels_last": False, "compile": False},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True, "compile": False},
    "bf16 + channels_last + compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def measure(cache_dir: Path, work_dir: Path, name: str, settings: dict, args: argparse.Namespace) -> dict:
    """Run ``warmup + steps`` real training steps; time only the last ``steps``."""
    device = torch.device(args.device)
    config = make_config(cache_dir, work_dir / name.replace(" ", "_").replace("+", ""), preset=args.config,
                         encoder=args.encoder, device=args.device, batch_size=args.batch_size,
                         num_workers=args.workers, epochs=1000, val_fraction=0.1, **settings)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    session = prepare(config, DistInfo(), device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    batches = iter(session.loader)
    wait = compute = 0.0
    for index in range(args.warmup + args.steps):
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(session.loader)
            batch = next(batches)
        fetched = time.perf_counter()
        train_step(session, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        done = time.perf_counter()
        if index >= args.warmup:
            wait += fetched - start
            compute += done - fetched
    total = wait + compute
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"samples_per_s": args.steps * config.train.batch_size / total, "peak_gib": peak,
            "data_wait": wait / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, help="output of `ctglip cache` (default: build a synthetic one)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--encoder", default="cnn", choices=("cnn", "vit"))
    parser.add_argument("--config", default=None, help="preset size or JSON (default: base on cuda, tiny on cpu)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: min(8, cpus))")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (compile happens here)")
    parser.add_argument("--scans", type=int, default=60, help="scans in the synthetic cache (without --cache)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    smoke = args.device == "cpu"
    if not smoke and not torch.cuda.is_available():
        parser.error("no CUDA device: pass --device cpu for a smoke run")
    args.config = args.config or ("tiny" if smoke else "base")
    args.batch_size = args.batch_size or (8 if smoke else 32)
    args.workers = args.workers if args.workers is not None else (0 if smoke else min(8, os.cpu_count() or 1))
    args.steps = args.steps or (2 if smoke else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 10)
    variants = {name: settings for name, settings in VARIANTS.items()
                if not (settings["compile"] and (args.no_compile or smoke))}
    if smoke:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="ctglip-gpu-bench-") as temp:
        cache_dir = args.cache or build_synth_cache(Path(temp) / "data", args.scans, workers=args.workers or 1)
        print(f"device {torch.cuda.get_device_name() if not smoke else 'cpu (smoke run)'}; "
              f"{args.encoder} {args.config}; global batch {args.batch_size}; {args.workers} workers; "
              f"{args.steps} timed steps after {args.warmup} warmup")
        results = {name: measure(cache_dir, Path(temp), name, settings, args) for name, settings in variants.items()}
    baseline = results["fp32 eager"]["samples_per_s"]
    print(f"{'variant':34s} {'samples/s':>10s} {'vs fp32':>8s} {'peak GiB':>9s} {'data wait':>10s}")
    for name, result in results.items():
        print(f"{name:34s} {result['samples_per_s']:10.1f} {result['samples_per_s'] / baseline:7.2f}x "
              f"{result['peak_gib']:9.2f} {100 * result['data_wait']:9.1f}%")
    best = max(results.values(), key=lambda result: result["samples_per_s"])
    prefix = "smoke run, not a measurement: " if smoke else ""
    print(f"{prefix}target: >= 3x fp32 eager ({best['samples_per_s'] / baseline:.2f}x), "
          f"data wait < 5 % ({100 * best['data_wait']:.1f} %)")


if __name__ == "__main__":
    main()
