"""Per-scan costs behind the README's "Train on CT-RATE" estimates: ingest, cache time, size and memory.

    python benchmarks/bench_ctrate_costs.py [--slices 100 140] [--target-slices 240] [--crop-sizes 64 96]

CT-RATE-sized volumes are generated with ``ctglip synth`` (512 x 512 voxels of 0.7 x 0.7 mm, 1.5 mm
slices), written as CT-RATE v1 (stored values, metadata CSV) and v2 (HU); the real TotalSegmentator
example, resampled to the same voxel size, is measured beside them. Two slice counts are measured
(a whole 240-slice synth volume needs more memory than a shared 2-core machine has to spare) and
every figure is extrapolated linearly to 240 slices. Per scan it prints:

- ingest: v1 (read, HU check, rescale with the metadata, spacing fix, write int16 .nii.gz) and v2
  (read, HU check, hard link), against a plain nibabel load + save of the same file (baseline);
- cache: preprocessing + crops + whole-volume sample + shard write at 1.5 mm for each crop size
  (uint8), the shard's size on disk and the peak memory of the process doing it (fresh process).

Segmentation is not measured here: TotalSegmentator needs its weights, which this machine lacks.
Every figure is CPU seconds of one single-threaded process (wall time on a shared machine measures the
other jobs); expect real CTs to compress worse than synthetic ones.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage


def _synth_volume(folder: Path, shape: tuple[int, ...], spacing: tuple[float, ...]) -> tuple[Path, Path, Path, dict]:
    """(v1 stored file, v2 HU file, its mask) for one CT-RATE-sized synth scan, plus a metadata CSV."""
    from stages.synth import SynthConfig, generate_scan
    from stages.synth import ctrate
    from stages.synth.io import write_ct, write_mask

    config = SynthConfig(out_dir=folder, n_scans=1, seed=11, shape=shape, spacing=spacing, prevalence=0.5)
    started = time.process_time()
    scan = generate_scan(config, 0)
    print(f"generated a synth scan {scan.ct.shape} at {spacing} mm in {time.process_time() - started:.1f} CPU s")
    ctrate.write_stored_volume(folder / "v1", "synth", scan.ct, scan.affine)
    v1 = ctrate.volume_path(folder / "v1", "synth")
    (folder / "v2").mkdir()
    write_ct(folder / "v2" / "synth.nii.gz", scan.ct, scan.affine)
    write_mask(folder / "mask_synth.nii.gz", scan.mask, scan.affine)
    row = ctrate.metadata_row("synth", scan.ct.shape, spacing)
    return v1, folder / "v2" / "synth.nii.gz", folder / "mask_synth.nii.gz", row


def _real_volume(folder: Path, example: Path, spacing: tuple[float, ...]) -> tuple[Path, Path]:
    """The real example (30 slices with its TotalSegmentator mask) resampled to ``spacing``."""
    ct, seg = nib.load(example / "example_ct_sm.nii.gz"), nib.load(example / "example_seg.nii.gz")
    zoom = np.asarray(ct.header.get_zooms()[:3]) / np.asarray(spacing)
    hu = ndimage.zoom(np.asanyarray(ct.dataobj).astype(np.float32), zoom, order=1)
    labels = ndimage.zoom(np.asanyarray(seg.dataobj), zoom, order=0)
    affine = ct.affine.copy()
    affine[:3, :3] = ct.affine[:3, :3] / zoom
    nib.save(nib.Nifti1Image(np.rint(hu).astype(np.int16), affine), folder / "real.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), folder / "mask_real.nii.gz")
    return folder / "real.nii.gz", folder / "mask_real.nii.gz"


def _timed(func, repeats: int = 2) -> float:
    """Best CPU seconds of this process over ``repeats`` runs: on a shared machine wall time
    measures the other jobs; the work is single-threaded, so CPU time is what one free core takes."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        func()
        best = min(best, time.process_time() - started)
    return best


def _ingest_seconds(path: Path, out: Path, metadata: Path | None) -> tuple[float, list[str]]:
    from stages.ingest.convert import ingest_one
    from stages.ingest.metadata import read_metadata
    from stages.ingest.sources import Source

    meta = read_metadata(metadata)["synth"] if metadata else None
    source = Source(path.name.split(".")[0], "nifti", path)
    out.mkdir(exist_ok=True)
    applied: list[str] = []

    def work() -> None:
        applied[:] = ingest_one(source, out, meta, "error").applied

    return _timed(work), applied


def _baseline_seconds(path: Path, out: Path) -> float:
    def work() -> None:
        image = nib.load(path)
        nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine, image.header), out / "copy.nii.gz")
    return _timed(work)


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cache_child(args: tuple[Path, Path, int, Path, object]) -> None:
    ct, mask, crop, out, queue = args
    import torch

    from stages.cache import io
    from stages.cache.preprocess import PreprocessConfig, organ_samples, preprocess_scan, volume_sample

    torch.set_num_threads(1)
    idle_mb = _peak_mb()
    cfg = PreprocessConfig(spacing=(1.5, 1.5, 1.5), crop_size=(crop,) * 3, volume_size=(96, 96, 96))
    started = time.process_time()
    scan = preprocess_scan(ct, mask, cfg)
    samples = organ_samples(scan, cfg)
    io.write_scan_shard(out, scan.scan_id, samples, volume_sample(scan, cfg), "uint8", "benchmark",
                        scan.densities[""])
    seconds = time.process_time() - started
    size = sum(p.stat().st_size for p in io.shard_dir(out, scan.scan_id).iterdir())
    peak_mb = _peak_mb()
    queue.put((seconds, size, len(samples), peak_mb, peak_mb - idle_mb))


def _cache_costs(ct: Path, mask: Path, crop: int, out: Path) -> tuple[float, int, int, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_cache_child, args=((ct, mask, crop, out, queue),))
    process.start()
    result = queue.get()
    process.join()
    return result


def measure(temp: Path, shape: tuple[int, ...], spacing: tuple[float, ...], crops: list[int],
            example: Path) -> dict[str, float]:
    """Every per-scan figure for one volume size; returns them keyed by name."""
    v1, v2, synth_mask, row = _synth_volume(temp, shape, spacing)
    metadata = temp / "metadata.csv"
    metadata.write_text(",".join(row) + "\n" + ",".join(f'"{v}"' for v in row.values()) + "\n")
    figures = {"voxels_M": float(np.prod(shape)) / 1e6, "v1_MB": v1.stat().st_size / 1e6,
               "v2_MB": v2.stat().st_size / 1e6}
    print(f"file sizes: v1 (stored) {figures['v1_MB']:.1f} MB, v2 (HU) {figures['v2_MB']:.1f} MB")
    baseline = _baseline_seconds(v1, temp)
    for name, path, meta in (("ingest_v1", v1, metadata), ("ingest_v2", v2, None)):
        seconds, applied = _ingest_seconds(path, temp / name, meta)
        figures[name] = seconds
        print(f"  {name}: {seconds:6.2f} CPU s ({seconds / baseline:.2f}x a plain nibabel load + save, "
              f"{baseline:.2f} s)  applied: {'; '.join(a.split(' (')[0] for a in applied)}")
    volumes = [("synth", v2, synth_mask)]
    if (example / "example_ct_sm.nii.gz").is_file():
        volumes.append(("real", *_real_volume(temp, example, spacing)))
    for name, ct, mask in volumes:
        for crop in crops:
            out = temp / f"cache_{name}_{crop}"
            seconds, size, organs, peak_mb, scan_mb = _cache_costs(ct, mask, crop, out)
            voxels = int(np.prod(nib.load(ct).shape))
            figures[f"cache_{name}_{crop}_s"], figures[f"cache_{name}_{crop}_MB"] = seconds, size / 1e6
            figures[f"cache_{name}_{crop}_peak_MB"] = peak_mb
            print(f"  cache {name:5s} {voxels / 1e6:5.1f} M voxels, crop {crop}^3: {seconds:6.2f} CPU s, {organs} "
                  f"organ crops, shard {size / 1e6:6.2f} MB, peak memory {peak_mb:6.0f} MB "
                  f"({scan_mb:.0f} MB above the process after imports)")
            shutil.rmtree(out)
    for path in temp.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-plane", type=int, default=512, help="voxels per row and column")
    parser.add_argument("--slices", type=int, nargs=2, default=[100, 140],
                        help="two slice counts measured; figures are extrapolated linearly to --target-slices")
    parser.add_argument("--target-slices", type=int, default=240)
    parser.add_argument("--spacing", default="0.7,0.7,1.5")
    parser.add_argument("--crop-sizes", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--example", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator_example")
    args = parser.parse_args()
    spacing = tuple(float(v) for v in args.spacing.split(","))
    runs = []
    with tempfile.TemporaryDirectory() as temp:
        for slices in args.slices:
            shape = (args.in_plane, args.in_plane, slices)
            print(f"\n== {shape} voxels of {spacing} mm")
            runs.append(measure(Path(temp), shape, spacing, args.crop_sizes, args.example))
    small, large = runs
    print(f"\n== per scan at {args.in_plane} x {args.in_plane} x {args.target_slices} (linear in the slice count "
          f"from the two sizes above: an extrapolation)")
    for key in (key for key in large if not key.startswith("cache_real")):  # the real example has one size
        slope = (large[key] - small[key]) / (args.slices[1] - args.slices[0])
        print(f"  {key:28s} {large[key] + slope * (args.target_slices - args.slices[1]):10.2f}")


if __name__ == "__main__":
    main()
