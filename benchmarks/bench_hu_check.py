"""HU-check statistics on real, cropped, synthetic and broken CTs, and the check's cost per scan.

    python benchmarks/bench_hu_check.py [--example DIR] [--synth-scans 8]

Prints, per volume, what ``stages.common.hu_check`` measures and whether it passes: the real
TotalSegmentator example, crops of it inside the body (little or no air), ``ctglip synth`` scans,
and the failure classes built from the real example (stored values, double rescale, noise, a
mask, an 8-bit image). The thresholds in hu_check.py were set from this table.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from stages.common.hu_check import diagnosis, hu_stats, problems

DEFAULT_EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator_example"


def crop(volume: np.ndarray, fraction: float) -> np.ndarray:
    """The central ``fraction`` of each axis: a small field of view inside the body."""
    start = [int(n * (1 - fraction) / 2) for n in volume.shape]
    return volume[tuple(slice(s, s + max(2, int(n * fraction))) for s, n in zip(start, volume.shape))]


def cases(example: Path, n_synth: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in ("example_ct.nii.gz", "example_ct_sm.nii.gz"):
        hu = np.asanyarray(nib.load(example / name).dataobj).astype(np.float32)
        out.append((name, hu))
        out += [(f"  {name} central {f:.0%} per axis", crop(hu, f)) for f in (0.5, 0.3, 0.2)]
    hu = np.asanyarray(nib.load(example / "example_ct.nii.gz").dataobj).astype(np.float32)
    rng = np.random.default_rng(0)
    seg = np.asanyarray(nib.load(example / "example_seg.nii.gz").dataobj).astype(np.float32)
    out += [
        ("stored values (HU + 1024)", hu + 1024),
        ("stored values, central 30 %", crop(hu + 1024, 0.3)),
        ("stored values, slope 0.5 (HU + 1024) / 0.5", (hu + 1024) / 0.5),
        ("rescaled twice (HU - 1024)", hu - 1024),
        ("rescaled twice, central 30 %", crop(hu - 1024, 0.3)),
        ("uniform noise [-1024, 3071]", rng.uniform(-1024, 3071, hu.shape).astype(np.float32)),
        ("gaussian noise N(0, 1)", rng.standard_normal(hu.shape).astype(np.float32)),
        ("label mask (TotalSegmentator ids)", seg),
        ("8-bit image of the CT (window -160..240)", np.clip((hu + 160) / 400 * 255, 0, 255).round()),
        ("MR-like (positive intensities 0..2000)", np.clip(hu + 1000, 0, None) * 0.9),
    ]
    if n_synth:
        from stages.synth import SynthConfig, generate_scan

        config = SynthConfig(out_dir=Path(tempfile.gettempdir()), n_scans=n_synth, seed=0)
        out += [(f"synth scan {i}", generate_scan(config, i).ct.astype(np.float32)) for i in range(n_synth)]
        scan = generate_scan(config, 0).ct.astype(np.float32)
        out += [(f"  synth scan 0 central {f:.0%}", crop(scan, f)) for f in (0.5, 0.3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE)
    parser.add_argument("--synth-scans", type=int, default=8)
    args = parser.parse_args()
    print(f"{'volume':46s} {'p1':>7s} {'p50':>7s} {'p99':>7s} {'tissue':>7s} {'dense':>6s} {'air':>6s} "
          f"{'vals':>5s}  verdict")
    for name, values in cases(args.example, args.synth_scans):
        stats = hu_stats(values)
        found = problems(stats)
        verdict = "HU" if not found else f"REFUSED ({len(found)}): {diagnosis(values)}"
        print(f"{name:46s} {stats.p1:7.0f} {stats.p50:7.0f} {stats.p99:7.0f} {stats.tissue_fraction:7.3f} "
              f"{stats.dense_fraction:6.3f} {stats.air_fraction:6.3f} {stats.distinct:5d}  {verdict}")
    big = np.asanyarray(nib.load(args.example / "example_ct.nii.gz").dataobj).astype(np.float32)
    big = np.tile(big, (4, 4, 3))  # about a CT-RATE volume (488 x 404 x 336 voxels)
    started = time.perf_counter()
    problems(hu_stats(big))
    print(f"check of a {big.shape} volume ({big.size / 1e6:.0f} M voxels): {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
