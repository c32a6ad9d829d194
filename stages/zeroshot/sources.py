"""Where zero-shot samples come from: raw NIfTI + masks (preprocessed in memory with the
checkpoint's own preprocessing config) or an existing ``ctglip cache`` folder.

Each source yields ``(scan_id, load)`` pairs; ``load()`` does the work for one scan and
raises :class:`stages.common.nifti.InputError` (or another per-scan error) so that the
runner can record the failure and go on with the next scan.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stages.cache import PreprocessConfig, load_cache, organ_samples, preprocess_scan, volume_sample
from stages.common.ct_folder import list_ct_folder
from stages.common.errors import SetupError
from stages.common.nifti import InputError
from stages.segment.io import read_masks_dir


@dataclass
class ScanSamples:
    """Everything scored for one scan.

    ``images``/``masks``/``positions``/``densities`` hold one organ crop (its centre in the
    scan, its native HU histogram) per entry of ``organs`` (grounded mode), or a single
    whole-volume image (and the scan's histogram) with ``masks`` None (global mode, shared by
    every organ).
    """

    scan_id: str
    organs: list[str]
    complete: list[bool]
    volume_ml: list[float]
    images: np.ndarray
    masks: np.ndarray | None
    positions: np.ndarray | None = None
    densities: np.ndarray | None = None

    @property
    def global_image(self) -> bool:
        return self.masks is None


ScanLoader = Callable[[], ScanSamples]


def _no_organ_error(scan_id: str, where: str) -> InputError:
    return InputError(f"{where}: scan {scan_id} holds no organ of the checkpoint's vocabulary or "
                      "abnormality label space (empty or unrelated mask)")


def _from_nifti(ct_path: Path, mask_path: Path, preprocess: PreprocessConfig, organs: set[str],
                global_mode: bool, hu_check: str) -> ScanSamples:
    scan = preprocess_scan(ct_path, mask_path, preprocess, hu_check)
    scan = replace(scan, units=[unit for unit in scan.units if unit in organs])  # crop only what is scored
    samples = organ_samples(scan, preprocess)
    if not samples:
        raise _no_organ_error(scan.scan_id, str(mask_path))
    if global_mode:
        images, masks, positions = volume_sample(scan, preprocess)[None], None, None
        densities = scan.densities[""][None]
    else:
        images = np.stack([s.image for s in samples])
        masks = np.stack([s.mask for s in samples])
        positions = np.array([s.position for s in samples], dtype=np.float32)
        densities = np.stack([s.density for s in samples])
    return ScanSamples(scan.scan_id, [s.organ for s in samples], [bool(s.complete) for s in samples],
                       [float(s.volume_ml) for s in samples], images, masks, positions, densities)


def _missing_mask(scan_id: str, masks_dir: Path, reason: str) -> ScanLoader:
    def load() -> ScanSamples:
        raise InputError(f"{masks_dir}: no mask for scan {scan_id} ({reason}); run `ctglip segment` on it")
    return load


def _rejected(reason: str) -> ScanLoader:
    def load() -> ScanSamples:
        raise InputError(reason)
    return load


def nifti_sources(ct_dir: Path, masks_dir: Path, preprocess: PreprocessConfig, organs: set[str],
                  global_mode: bool, hu_check: str = "error") -> list[tuple[str, ScanLoader]]:
    """One loader per CT in ``ct_dir``; masks come from a validated ``ctglip segment`` folder."""
    masks = read_masks_dir(Path(masks_dir))
    listing = list_ct_folder(Path(ct_dir))
    sources = [(item.item_id, _rejected(item.error)) for item in listing.rejected]
    for scan_id, ct_path in listing.scans.items():
        if scan_id not in masks:
            sources.append((scan_id, _missing_mask(scan_id, Path(masks_dir), "not segmented, or segmentation failed")))
            continue
        sources.append((scan_id, lambda c=ct_path, m=masks[scan_id]: _from_nifti(c, m, preprocess, organs,
                                                                                   global_mode, hu_check)))
    return sources


def check_cache_preprocess(cache_preprocess: PreprocessConfig, checkpoint_preprocess: PreprocessConfig,
                           cache_dir: Path) -> None:
    """Refuse a cache preprocessed differently from the checkpoint's training data."""
    if cache_preprocess != checkpoint_preprocess:
        raise SetupError(f"{cache_dir}: cache preprocessing {cache_preprocess.to_dict()} differs from the "
                         f"checkpoint's {checkpoint_preprocess.to_dict()}; rebuild the cache with the "
                         "checkpoint's settings or pass --ct-dir/--masks-dir instead")


def cache_sources(cache_dir: Path, preprocess: PreprocessConfig, organs: set[str],
                  global_mode: bool) -> list[tuple[str, ScanLoader]]:
    """One loader per scan of a ``ctglip cache`` folder (organ samples, or volume samples in global mode)."""
    organ_cache = load_cache(Path(cache_dir), kind="organ")
    check_cache_preprocess(organ_cache.preprocess, preprocess, Path(cache_dir))
    volume_rows: dict[str, int] = {}
    volume_cache = None
    if global_mode:
        volume_cache = load_cache(Path(cache_dir), kind="volume")
        volume_rows = {str(scan): int(row) for row, scan in enumerate(volume_cache.index["scan_id"])}
    rows_by_scan: dict[str, dict[str, int]] = {}
    for row, (scan, organ) in enumerate(zip(organ_cache.index["scan_id"], organ_cache.index["organ"])):
        scan_rows = rows_by_scan.setdefault(str(scan), {})
        if organ in organs:
            scan_rows.setdefault(str(organ), row)  # one crop per organ, however many texts it has

    def load(scan_id: str) -> ScanSamples:
        rows = rows_by_scan[scan_id]
        if not rows:
            raise _no_organ_error(scan_id, str(cache_dir))
        samples = [organ_cache[row] for row in rows.values()]
        if global_mode:
            if scan_id not in volume_rows:
                raise InputError(f"{cache_dir}: no volume sample for scan {scan_id}")
            volume = volume_cache[volume_rows[scan_id]]
            images, masks, positions = volume["image"][None], None, None
            densities = None if volume["density"] is None else volume["density"][None]
        else:
            images = np.stack([s["image"] for s in samples])
            masks = np.stack([s["mask"] for s in samples])
            positions = np.stack([np.asarray(s["position"], dtype=np.float32) for s in samples])
            densities = None if samples[0]["density"] is None else np.stack([s["density"] for s in samples])
        volumes = [float(organ_cache.index.at[row, "volume_ml"]) if "volume_ml" in organ_cache.index else float("nan")
                   for row in rows.values()]
        return ScanSamples(scan_id, [s["organ"] for s in samples], [bool(s["complete"]) for s in samples],
                           volumes, images, masks, positions, densities)

    return [(scan_id, lambda s=scan_id: load(s)) for scan_id in sorted(rows_by_scan)]
