"""Scans/min of ctglip's cache preprocessing vs a straightforward MONAI dictionary pipeline.

Both do the same work per scan: load CT + mask, RAS, window, and for every organ unit a
crop at 1.5 mm resized to the crop size, plus the whole-volume sample, written to disk.
The MONAI baseline resamples the whole volume with ``Spacingd`` and crops per organ
with ``CropForegroundd`` + ``Resized``; ctglip resamples each crop once from the native
grid. Measured in one run on the same scans, one process each.

    python benchmarks/bench_cache.py                 # generates 8 synthetic scans
    python benchmarks/bench_cache.py --ct-dir CT --masks-dir MASKS --limit 10
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.transforms import (Compose, CropForegroundd, EnsureChannelFirstd, LoadImaged, Orientationd, Resized,
                              ScaleIntensityRanged, Spacingd)

from stages.cache.io import to_stored
from stages.cache.preprocess import PreprocessConfig, organ_samples, preprocess_scan, volume_sample
from stages.common.anatomy import organ_units
from stages.common.ct_folder import list_ct_folder
from stages.common.ids import scan_id_from_path


def ctglip_scan(ct: Path, mask: Path, cfg: PreprocessConfig, out: Path) -> int:
    scan = preprocess_scan(ct, mask, cfg)
    samples = organ_samples(scan, cfg)
    np.save(out / f"{scan.scan_id}_images.npy", np.stack([to_stored(s.image, "uint8") for s in samples]))
    np.save(out / f"{scan.scan_id}_masks.npy", np.stack([np.packbits(s.mask) for s in samples]))
    np.save(out / f"{scan.scan_id}_volume.npy", to_stored(volume_sample(scan, cfg), "uint8"))
    return len(samples)


def monai_pipeline(cfg: PreprocessConfig) -> Compose:
    lo, hi = cfg.window
    return Compose([
        LoadImaged(keys=["image", "label"]),
        EnsureChannelFirstd(keys=["image", "label"]),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=cfg.spacing, mode=("bilinear", "nearest")),
        ScaleIntensityRanged(keys=["image"], a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
    ])


def monai_scan(ct: Path, mask: Path, cfg: PreprocessConfig, pipeline: Compose, out: Path) -> int:
    data = pipeline({"image": str(ct), "label": str(mask)})
    labels = data["label"]
    margin = [int(round(cfg.margin_mm / s)) for s in cfg.spacing]
    crops = []
    for unit in organ_units().values():
        organ_mask = torch.isin(labels, torch.tensor(unit.label_ids, dtype=labels.dtype))
        if int(organ_mask.sum()) < cfg.min_organ_voxels:
            continue
        item = {"image": data["image"], "organ": organ_mask.float()}
        item = CropForegroundd(keys=["image", "organ"], source_key="organ", margin=margin)(item)
        item = Resized(keys=["image", "organ"], spatial_size=cfg.crop_size, mode=("trilinear", "nearest"))(item)
        crops.append((np.asarray(item["image"][0]), np.asarray(item["organ"][0]) > 0.5))
    volume = Resized(keys=["image"], spatial_size=cfg.volume_size, mode="trilinear")({"image": data["image"]})
    scan_id = scan_id_from_path(ct)
    np.save(out / f"{scan_id}_images.npy", np.stack([to_stored(image, "uint8") for image, _ in crops]))
    np.save(out / f"{scan_id}_masks.npy", np.stack([np.packbits(mask) for _, mask in crops]))
    np.save(out / f"{scan_id}_volume.npy", to_stored(np.asarray(volume["image"][0]), "uint8"))
    return len(crops)


def synth_scans(folder: Path, n_scans: int) -> tuple[Path, Path]:
    from stages.synth import SynthConfig
    from stages.synth import run as run_synth

    run_synth(SynthConfig(out_dir=folder, n_scans=n_scans, seed=7))
    return folder / "ct", folder / "masks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct-dir", type=Path)
    parser.add_argument("--masks-dir", type=Path)
    parser.add_argument("--n-scans", type=int, default=8, help="synthetic scans when no folders are given")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both pipelines")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PreprocessConfig()
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        ct_dir, masks_dir = (args.ct_dir, args.masks_dir) if args.ct_dir else synth_scans(temp / "synth", args.n_scans)
        pairs = [(ct, masks_dir / ct.name) for ct in list_ct_folder(ct_dir).scans.values()][: args.limit]
        pipeline = monai_pipeline(cfg)
        results = {}
        for name, work in (("ctglip", lambda ct, m, o: ctglip_scan(ct, m, cfg, o)),
                           ("monai-dict", lambda ct, m, o: monai_scan(ct, m, cfg, pipeline, o))):
            out = temp / name
            out.mkdir()
            work(*pairs[0], out)  # warm-up (imports, allocator)
            started = time.perf_counter()
            organs = sum(work(ct, mask, out) for ct, mask in pairs)
            seconds = time.perf_counter() - started
            results[name] = len(pairs) / seconds * 60.0
            print(f"{name:>11}: {len(pairs)} scans, {organs} organ crops in {seconds:.2f} s "
                  f"-> {results[name]:.1f} scans/min")
        print(f"ratio ctglip / monai-dict: {results['ctglip'] / results['monai-dict']:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
