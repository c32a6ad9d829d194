"""CPU pretraining throughput of the tiny preset, against a full-resolution baseline.

Runs the real training step (``stages.pretrain.session.prepare`` + ``train_step``) on a
cache and prints samples/s for

- the tiny preset (crops average-pooled to a 32^3 working grid before the nnU-Net encoder),
- the same model at full crop resolution (``working_size: null``), the baseline,
- reading + collating batches alone (the data side),

with the ratio to the baseline and the projected time of a full tiny run on the cache.

    python benchmarks/bench_pretrain_cpu.py                      # builds a 40-scan synthetic cache
    python benchmarks/bench_pretrain_cpu.py --cache CACHE_DIR --steps 10 --threads 1
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from stages.pretrain import make_config
from stages.pretrain.distributed import DistInfo
from stages.pretrain.session import prepare
from stages.pretrain.train import train_step


def build_synth_cache(root: Path, n_scans: int, workers: int = 1, seed: int = 0) -> Path:
    """A cache made by the real stages: synth -> segment (import) -> parse-reports -> cache."""
    from stages.cache import CacheConfig
    from stages.cache import run as run_cache
    from stages.parse_reports import ParseReportsConfig
    from stages.parse_reports import run as run_parse
    from stages.segment import SegmentConfig
    from stages.segment import run as run_segment
    from stages.synth import SynthConfig
    from stages.synth import run as run_synth

    run_synth(SynthConfig(out_dir=root, n_scans=n_scans, seed=seed, workers=workers, preview=False))
    run_segment(SegmentConfig(root / "ct", root / "segmentations", engine="import", import_from=root / "masks"))
    run_parse(ParseReportsConfig(reports=root / "reports.csv", out_dir=root / "parsed"))
    result = run_cache(CacheConfig(ct_dir=root / "ct", masks_dir=root / "segmentations",
                                   reports_dir=root / "parsed", out_dir=root / "cache", workers=workers))
    if result.exit_code != 0:
        raise RuntimeError(f"building the synthetic cache failed: {[i.error for i in result.failed][:3]}")
    return root / "cache"


def session_for(cache_dir: Path, out_dir: Path, args: argparse.Namespace, **model_overrides):
    config = make_config(cache_dir, out_dir, preset="tiny", encoder=args.encoder, device="cpu",
                         batch_size=args.batch_size)
    config.model.update(model_overrides)
    return prepare(config, DistInfo(), torch.device("cpu"))


def batches_per_second(session, steps: int, train: bool) -> tuple[float, float]:
    """(samples/s, fraction of time waiting for data) over ``steps`` batches after one warmup batch."""
    batches = iter(session.loader)
    if train:
        train_step(session, next(batches))
    wait = total = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        if train:
            train_step(session, batch)
        wait += fetched - start
        total += time.perf_counter() - start
    return steps * session.config.train.batch_size / total, wait / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, help="output of `ctglip cache` (default: build a synthetic one)")
    parser.add_argument("--scans", type=int, default=40, help="scans in the synthetic cache (without --cache)")
    parser.add_argument("--encoder", default="cnn", choices=("cnn", "vit"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ctglip-cpu-bench-") as temp:
        work = Path(temp)
        cache_dir = args.cache or build_synth_cache(work / "data", args.scans, workers=2)
        tiny = session_for(cache_dir, work / "tiny", args)
        print(f"cpu threads {torch.get_num_threads()}; {args.encoder} tiny; batch {args.batch_size}; "
              f"{len(tiny.loader.dataset)} training samples; {args.steps} timed steps")
        data_rate, _ = batches_per_second(tiny, args.steps, train=False)
        tiny_rate, tiny_wait = batches_per_second(tiny, args.steps, train=True)
        full = session_for(cache_dir, work / "full", args, working_size=None)
        full_rate, _ = batches_per_second(full, max(1, args.steps // 2), train=True)
    print(f"{'measurement':44s} {'samples/s':>10s} {'vs baseline':>12s}")
    print(f"{'baseline: full-resolution crops':44s} {full_rate:10.1f} {1.0:11.2f}x")
    print(f"{'tiny preset (32^3 working grid)':44s} {tiny_rate:10.1f} {tiny_rate / full_rate:11.2f}x")
    print(f"{'data only (read + collate)':44s} {data_rate:10.1f} {data_rate / full_rate:11.2f}x")
    steps = tiny.total_steps
    print(f"data wait in tiny training: {100 * tiny_wait:.1f} %; a full tiny run here is {steps} steps x "
          f"{tiny.config.train.batch_size} samples -> about {steps * tiny.config.train.batch_size / tiny_rate:.0f} s "
          "of training (plus start-up and validation)")


if __name__ == "__main__":
    main()
