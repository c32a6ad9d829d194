"""The one preprocessing function shared by ``ctglip cache`` and ``ctglip zeroshot``.

Train/inference mismatch is the most common complaint against CT foundation models,
so both stages call exactly these functions with the config stored in the checkpoint.

Steps: nibabel load -> closest canonical (RAS) orientation -> HU window scaled to
[0, 1] (MONAI ``ScaleIntensityRange``) -> per organ, one resampling pass straight from
the native grid to a ``crop_size`` grid at ``spacing`` (trilinear for the image, nearest
for labels). A crop keeps the physical scale (padding with air) unless the organ plus
margin does not fit, in which case it is scaled down isotropically, so organ size stays
visible to the model (cardiomegaly, splenomegaly) and aspect ratios are never distorted.

Each sample also carries its organ's HU histogram measured on the native grid over a wide
range (``density_range``): a crop shrunk to fit a long organ (the aorta is ~40 cm, its crop
~10 cm) samples the native voxels sparsely, so 2-4 mm calcified plaques or a small nodule
vanish from it, and the window clips calcium and contrast-filled lumen to the same value.
The histogram counts every native voxel of the organ with calibrated HU, so neither happens.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import ScaleIntensityRange
from scipy import ndimage

from stages.common.anatomy import label_to_unit, organ_units
from stages.common.errors import SetupError
from stages.common.hu_check import check_hu
from stages.common.ids import scan_id_from_path
from stages.common.nifti import InputError, grid_mismatch, load_volume, read_array

MASK_THRESHOLD = 0.5
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "fvlm": (-1150.0, 350.0),
    "abdomen": (-160.0, 240.0),
    "lung": (-1350.0, 150.0),
    "mediastinum": (-125.0, 225.0),
    "ctclip": (-1000.0, 1000.0),
}


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that decides what a sample looks like; stored in the cache and checkpoint."""

    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)
    window: tuple[float, float] = WINDOW_PRESETS["fvlm"]
    crop_size: tuple[int, int, int] = (64, 64, 64)
    margin_mm: float = 10.0
    volume_size: tuple[int, int, int] = (96, 96, 96)
    min_organ_voxels: int = 10
    density_range: tuple[float, float] = (-1100.0, 1500.0)
    density_bins: int = 32

    def __post_init__(self) -> None:
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise SetupError(f"spacing must be three positive numbers in mm, got {self.spacing}")
        if len(self.window) != 2 or self.window[0] >= self.window[1]:
            raise SetupError(f"window must be LO HI with LO < HI, got {self.window}")
        if len(self.crop_size) != 3 or min(self.crop_size) < 8:
            raise SetupError(f"crop size must be three integers >= 8, got {self.crop_size}")
        if self.margin_mm < 0:
            raise SetupError(f"margin must be >= 0 mm, got {self.margin_mm}")
        if len(self.density_range) != 2 or self.density_range[0] >= self.density_range[1] or self.density_bins < 2:
            raise SetupError(f"density histogram needs LO < HI and >= 2 bins, got {self.density_range}, "
                             f"{self.density_bins}")

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        tuples = {"spacing", "window", "crop_size", "volume_size", "density_range"}
        return cls(**{key: tuple(value) if key in tuples else value for key, value in data.items()})


@dataclass
class PreprocessedScan:
    """A scan in RAS orientation on its native grid, windowed to [0, 1]."""

    scan_id: str
    image: np.ndarray  # float32 [X, Y, Z] in [0, 1]
    labels: np.ndarray  # int16 TotalSegmentator ids, same grid
    spacing: tuple[float, float, float]  # native voxel size in mm (RAS axes)
    units: list[str]  # organ units present with at least ``min_organ_voxels`` voxels
    densities: dict[str, np.ndarray]  # unit -> density histogram; "" -> the whole scan's


@dataclass
class OrganSample:
    """One organ crop: image, mask and geometry (bounding boxes on the native RAS grid)."""

    organ: str
    image: np.ndarray  # float32 crop_size in [0, 1]
    mask: np.ndarray  # bool crop_size
    complete: bool  # False when the organ touches the edge of the scanned volume
    volume_ml: float
    bbox_vox: tuple[int, int, int, int, int, int]  # x0, y0, z0, x1, y1, z1 (exclusive ends)
    bbox_mm: tuple[float, float, float]  # extent in mm
    scale: float  # >1 where the crop was shrunk to fit the organ
    position: tuple[float, float, float]  # box centre as a fraction of the scan extent, -0.5..0.5 per RAS axis
    density: np.ndarray  # float32 [density_bins]: fractions of the organ's native voxels per HU bin


def preprocess_scan(ct_path: Path, mask_path: Path, cfg: PreprocessConfig,
                    hu_check: str = "error") -> PreprocessedScan:
    """Load a CT and its multilabel mask, reorient both to RAS and window the CT.

    ``hu_check`` (``error``/``warn``/``off``): what to do with a CT whose values are not HU.
    """
    ct_path, mask_path = Path(ct_path), Path(mask_path)
    scan_id = scan_id_from_path(ct_path)
    ct = load_volume(ct_path, "CT")
    if not mask_path.is_file():
        raise InputError(f"{mask_path}: mask missing for scan {scan_id}; run `ctglip segment` first")
    mask = load_volume(mask_path, "mask")
    mismatch = grid_mismatch(ct, mask)
    if mismatch:
        raise InputError(f"{mask_path}: mask is not on the CT's grid ({mismatch})")
    ct, mask = nib.as_closest_canonical(ct), nib.as_closest_canonical(mask)
    hu = read_array(ct, ct_path, np.float32)
    labels = read_array(mask, mask_path, np.float32)
    if not np.all(np.isfinite(hu)):
        raise InputError(f"{ct_path}: CT holds NaN or infinite values")
    check_hu(hu, ct_path, hu_check)
    label_ids = np.rint(labels).astype(np.int16)
    known = label_to_unit()
    unknown = sorted(set(np.unique(label_ids).tolist()) - set(known) - {0})
    if unknown:
        raise InputError(f"{mask_path}: label ids {unknown[:10]} are not TotalSegmentator 'total' ids")
    lo, hi = cfg.window
    window = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
    image = np.asarray(window(hu), dtype=np.float32)
    spacing = tuple(float(s) for s in ct.header.get_zooms()[:3])
    counts = np.bincount(label_ids.ravel().clip(min=0), minlength=max(known) + 1)
    present: dict[str, int] = {}
    for label_id, unit in known.items():
        present[unit] = present.get(unit, 0) + int(counts[label_id])
    units = [unit for unit in organ_units() if present.get(unit, 0) >= cfg.min_organ_voxels]
    densities = density_histograms(hu, _unit_index_volume(label_ids, units), units, cfg)
    return PreprocessedScan(scan_id, image, label_ids, spacing, units, densities)  # type: ignore[arg-type]


def density_histograms(hu: np.ndarray, unit_index: np.ndarray, units: list[str],
                       cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """Per organ unit (1-based ``unit_index``) and for the whole scan (key ""): the fraction of
    native voxels in each of ``density_bins`` triangular soft bins over ``density_range``.

    Bin centres run from LO to HI; a voxel splits between its two nearest centres, so the
    fractions sum to one and values beyond the range fall in the end bins. One pass.
    """
    lo, hi = cfg.density_range
    bins = cfg.density_bins
    position = (np.clip(hu.ravel(), lo, hi) - lo) * ((bins - 1) / (hi - lo))
    lower = np.minimum(np.floor(position).astype(np.int64), bins - 2)
    upper_share = position - lower
    slot = unit_index.ravel().astype(np.int64) * bins + lower
    size = (len(units) + 1) * bins
    counts = (np.bincount(slot, weights=1.0 - upper_share, minlength=size)
              + np.bincount(slot + 1, weights=upper_share, minlength=size)).reshape(len(units) + 1, bins)
    whole = counts.sum(axis=0)
    result = {"": (whole / max(whole.sum(), 1.0)).astype(np.float32)}
    for index, unit in enumerate(units, start=1):
        result[unit] = (counts[index] / max(counts[index].sum(), 1.0)).astype(np.float32)
    return result


def _unit_index_volume(labels: np.ndarray, units: list[str]) -> np.ndarray:
    """Labels mapped to 1-based indices of ``units`` (0 elsewhere), for one-pass bounding boxes."""
    lookup = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int32)
    table = organ_units()
    for index, unit in enumerate(units, start=1):
        for label_id in table[unit].label_ids:
            if label_id < lookup.size:
                lookup[label_id] = index
    return lookup[labels]


def _sampling_grid(center_vox: np.ndarray, out_size: tuple[int, int, int], out_spacing: np.ndarray,
                   in_spacing: np.ndarray, in_shape: tuple[int, ...]) -> torch.Tensor:
    """grid_sample grid (align_corners=True) mapping an output lattice to native voxel coords."""
    axes = []
    for axis in range(3):
        offsets = (np.arange(out_size[axis]) - (out_size[axis] - 1) / 2.0) * out_spacing[axis] / in_spacing[axis]
        coords = center_vox[axis] + offsets
        axes.append(torch.from_numpy(2.0 * coords / max(in_shape[axis] - 1, 1) - 1.0).float())
    gx, gy, gz = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
    # grid_sample's last dim is (W, H, D) order = (z, y, x) for a [N, C, X, Y, Z] input
    return torch.stack((gz, gy, gx), dim=-1).unsqueeze(0)


def _snap_to_voxels(center: np.ndarray, out_size: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Shift a crop centre so its first sample lands on a native voxel centre.

    With an aligned lattice, upsampled points fall on or halfway between native voxels,
    which keeps mask-boundary samples from mixing organ and background intensities.
    """
    first = center - (out_size - 1) / 2.0 * step
    return np.round(first) + (out_size - 1) / 2.0 * step


def _resample(volume: np.ndarray, grid: torch.Tensor, mode: str) -> np.ndarray:
    """Sample ``volume`` on ``grid``; points outside the scanned field of view become 0 (air).

    Border padding inside the volume keeps the last slice from being blended with the
    out-of-view zeros, which would bias HU of every organ cut by the field of view.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    out = F.grid_sample(tensor, grid, mode=mode, padding_mode="border", align_corners=True)[0, 0]
    half_voxel = torch.tensor([1.0 / max(n - 1, 1) for n in reversed(volume.shape[:3])])
    inside = (grid[0].abs() <= 1.0 + half_voxel).all(dim=-1)
    return torch.where(inside, out, torch.zeros(())).numpy()


def organ_samples(scan: PreprocessedScan, cfg: PreprocessConfig) -> list[OrganSample]:
    """One crop per organ unit present: bbox + margin at ``cfg.spacing``, shrunk only to fit."""
    if not scan.units:
        return []
    index_volume = _unit_index_volume(scan.labels, scan.units)
    boxes = ndimage.find_objects(index_volume, max_label=len(scan.units))
    in_spacing = np.asarray(scan.spacing, dtype=np.float64)
    target_spacing = np.asarray(cfg.spacing, dtype=np.float64)
    crop_size = np.asarray(cfg.crop_size, dtype=np.float64)
    voxel_ml = float(np.prod(in_spacing)) / 1000.0
    samples = []
    for index, (unit, box) in enumerate(zip(scan.units, boxes), start=1):
        if box is None:
            continue
        start = np.array([s.start for s in box], dtype=np.float64)
        stop = np.array([s.stop for s in box], dtype=np.float64)
        extent_mm = (stop - start) * in_spacing + 2 * cfg.margin_mm
        scale = max(1.0, float(np.max(extent_mm / (crop_size * target_spacing))))
        out_spacing = target_spacing * scale
        center = _snap_to_voxels((start + stop - 1) / 2.0, crop_size, out_spacing / in_spacing)
        grid = _sampling_grid(center, cfg.crop_size, out_spacing, in_spacing, scan.image.shape)
        image = _resample(scan.image, grid, "bilinear")
        unit_mask = (index_volume == index).astype(np.float32)
        mask = _resample(unit_mask, grid, "bilinear") > MASK_THRESHOLD
        in_box = index_volume[box] == index
        touches = bool(np.any(start == 0) or np.any(stop == np.asarray(scan.image.shape[:3])))
        samples.append(OrganSample(
            organ=unit,
            image=np.clip(image, 0.0, 1.0).astype(np.float32),
            mask=mask,
            complete=not touches,
            volume_ml=float(in_box.sum()) * voxel_ml,
            bbox_vox=tuple(int(v) for v in (*start, *stop)),  # type: ignore[arg-type]
            bbox_mm=tuple(float(v) for v in (stop - start) * in_spacing),  # type: ignore[arg-type]
            scale=scale,
            position=tuple(float(v) for v in organ_position(start, stop, scan.image.shape)),  # type: ignore[arg-type]
            density=scan.densities[unit],
        ))
    return samples


def organ_position(start: np.ndarray, stop: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Where the organ sits in the scan (-0.5..0.5 per RAS axis).

    A crop alone cannot tell a left kidney from a right one; CT-GLIP pools features from a
    whole-volume feature map, where position is implicit. Crops carry it explicitly instead.
    """
    extent = np.maximum(np.asarray(shape[:3], dtype=np.float64) - 1.0, 1.0)
    return (start + stop - 1) / 2.0 / extent - 0.5


def volume_sample(scan: PreprocessedScan, cfg: PreprocessConfig) -> np.ndarray:
    """The whole scan fitted isotropically into ``volume_size`` (global-CLIP baseline input)."""
    in_spacing = np.asarray(scan.spacing, dtype=np.float64)
    shape = np.asarray(scan.image.shape[:3], dtype=np.float64)
    size = np.asarray(cfg.volume_size, dtype=np.float64)
    out_mm = float(np.max(shape * in_spacing / size))
    center = (shape - 1) / 2.0
    grid = _sampling_grid(center, cfg.volume_size, np.full(3, out_mm), in_spacing, scan.image.shape)
    return np.clip(_resample(scan.image, grid, "bilinear"), 0.0, 1.0).astype(np.float32)
