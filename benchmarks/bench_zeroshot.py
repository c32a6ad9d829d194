"""Seconds per scan of ``ctglip zeroshot`` on raw NIfTI (preprocessing included), per device.

Baselines measured in the same run: preprocessing alone (load, RAS, window, organ crops:
the floor every inference pays) and the same zeroshot run with one organ per forward pass.
Target (issue 7): <= 2 s/scan on a GPU, preprocessing included.

    python benchmarks/bench_zeroshot.py                      # synth data, 2-step tiny model
    python benchmarks/bench_zeroshot.py --scans 20 --preset base
    python benchmarks/bench_zeroshot.py --checkpoint RUN/final.pt --ct-dir CT --masks-dir MASKS
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from stages.cache import CacheConfig, organ_samples, preprocess_scan
from stages.cache import run as build_cache
from stages.common.ct_folder import list_ct_folder
from stages.common.manifest import read_manifest
from stages.parse_reports import ParseReportsConfig
from stages.parse_reports import run as parse_reports
from stages.pretrain import load_checkpoint, make_config
from stages.pretrain import run as pretrain
from stages.segment import SegmentConfig
from stages.segment import run as segment
from stages.segment.io import read_masks_dir
from stages.synth import SynthConfig
from stages.synth import run as synth
from stages.zeroshot import ZeroshotConfig, run


def make_data(work: Path, scans: int, preset: str) -> tuple[Path, Path, Path]:
    """Synth scans + masks, and a checkpoint trained for 2 steps (weights do not matter for speed).

    Reuses what an earlier run left in ``--work``.
    """
    checkpoint = work / "run" / "last.pt"
    if checkpoint.is_file():
        return checkpoint, work / "synth" / "ct", work / "masks"
    synth(SynthConfig(out_dir=work / "synth", n_scans=scans, seed=11, preview=False))
    segment(SegmentConfig(work / "synth" / "ct", work / "masks", engine="import", import_from=work / "synth" / "masks"))
    parse_reports(ParseReportsConfig(reports=work / "synth" / "reports.csv", out_dir=work / "parsed"))
    build_cache(CacheConfig(ct_dir=work / "synth" / "ct", masks_dir=work / "masks", reports_dir=work / "parsed",
                            out_dir=work / "cache"))
    pretrain(make_config(work / "cache", work / "run", preset=preset, encoder="cnn", device="cpu",
                         stop_after_steps=2, batch_size=8, epochs=1))
    return checkpoint, work / "synth" / "ct", work / "masks"


def preprocessing_seconds(checkpoint: Path, ct_dir: Path, masks_dir: Path) -> list[float]:
    """Per scan: NIfTI load + RAS + window + crops of the organs zeroshot scores."""
    config = load_checkpoint(checkpoint)[1].config
    preprocess = config.cache.preprocess
    organs = set(config.organ_vocab) | set(config.abnormality_dictionary)
    masks = read_masks_dir(masks_dir)
    seconds = []
    for scan_id, ct in list_ct_folder(ct_dir).scans.items():
        started = time.perf_counter()
        scan = preprocess_scan(ct, masks[scan_id], preprocess)
        organ_samples(replace(scan, units=[u for u in scan.units if u in organs]), preprocess)
        seconds.append(time.perf_counter() - started)
    return seconds


def zeroshot_seconds(checkpoint: Path, ct_dir: Path, masks_dir: Path, out: Path, device: str,
                     batch_size: int) -> tuple[list[float], float]:
    """(per-scan seconds from the manifest, wall seconds of the whole run incl. model/text loading)."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = run(ZeroshotConfig(checkpoint=checkpoint, output_dir=out, ct_dir=ct_dir, masks_dir=masks_dir,
                                device=device, batch_size=batch_size, resamples=10))
    wall = time.perf_counter() - started
    if result.failed:
        raise RuntimeError(f"benchmark scans failed: {[(i.item_id, i.error) for i in result.failed]}")
    items = read_manifest(out, "zeroshot")["items"].values()
    return [float(item["seconds"]) for item in items], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8, help="synth scans to generate (default 8)")
    parser.add_argument("--preset", default="tiny", help="model preset for the generated checkpoint")
    parser.add_argument("--checkpoint", type=Path, help="use this checkpoint (with --ct-dir/--masks-dir)")
    parser.add_argument("--ct-dir", type=Path)
    parser.add_argument("--masks-dir", type=Path)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp folder, removed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_zeroshot_"))
    try:
        if args.checkpoint:
            checkpoint, ct_dir, masks_dir = args.checkpoint, args.ct_dir, args.masks_dir
        else:
            checkpoint, ct_dir, masks_dir = make_data(work, args.scans, args.preset)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
              f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
        floor = statistics.mean(preprocessing_seconds(checkpoint, ct_dir, masks_dir))
        print(f"baseline preprocessing only (CPU): {floor:.3f} s/scan")
        for device in devices:
            batched, wall = zeroshot_seconds(checkpoint, ct_dir, masks_dir, work / f"zs_{device}", device,
                                             args.batch_size)
            single, _ = zeroshot_seconds(checkpoint, ct_dir, masks_dir, work / f"zs_{device}_1", device, 1)
            per_scan, per_scan_single = statistics.mean(batched), statistics.mean(single)
            verdict = ("" if device == "cpu" else
                       f"  target <= 2 s/scan: {'met' if per_scan <= 2.0 else 'NOT met'}")
            print(f"{device}: zeroshot {per_scan:.3f} s/scan (batch {args.batch_size}; "
                  f"{wall:.1f} s wall for {len(batched)} scans incl. loading) = {per_scan / floor:.2f}x preprocessing; "
                  f"batch 1: {per_scan_single:.3f} s/scan = {per_scan_single / per_scan:.2f}x batched{verdict}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
