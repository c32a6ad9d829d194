"""One scan in, one HU NIfTI out: read (NIfTI or DICOM), decide rescale and spacing with the HU
check, then link the file when nothing changes or write a new one.

The rescale from ``--metadata`` is applied only when the volume as read fails the HU check and
the rescaled one passes, so a file that already holds HU (CT-RATE v2) is never rescaled twice,
whatever its metadata says.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from stages.common.atomic import atomic_path
from stages.common.hu_check import HUCheckError, check_hu, diagnosis, hu_stats, problems
from stages.common.nifti import InputError, load_volume, read_array
from stages.ingest.metadata import VolumeMetadata
from stages.ingest.sources import Source

SPACING_RTOL = 0.01  # header spacing within 1 % of the metadata's is kept
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Outcome:
    """What ingest did to one scan; becomes its manifest entry."""

    output: str = ""
    applied: list[str] = field(default_factory=list)  # rescale, spacing fix, conversion, link
    notes: list[str] = field(default_factory=list)
    hu: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)

    def extra(self, source: Source) -> dict[str, Any]:
        data = {"source": str(source.path), "kind": source.kind, "output": self.output,
                "applied": self.applied, "notes": self.notes, "hu": self.hu}
        if self.series:
            data["series"] = self.series
        return data


def read_dicom(source: Source) -> tuple[np.ndarray, np.ndarray]:
    """Voxels (x, y, z) and RAS affine of a DICOM series; GDCM applies RescaleSlope/Intercept."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in source.files])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"{source.path}: cannot read DICOM series ({str(error).strip().splitlines()[-1]})") from error
    values = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)).astype(np.float32)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    return values, LPS_TO_RAS @ lps


def _decide_values(values: np.ndarray, path: Path, meta: VolumeMetadata | None, mode: str,
                   outcome: Outcome) -> np.ndarray:
    """HU as read, or rescaled with the metadata: whichever passes the HU check (never both)."""
    rescaled = None
    if meta is not None and (meta.slope, meta.intercept) != (1.0, 0.0):
        rescaled = values * np.float32(meta.slope) + np.float32(meta.intercept)
    if mode == "off":
        if rescaled is not None:
            outcome.applied.append(f"rescale slope {meta.slope:g} intercept {meta.intercept:g} (metadata; HU check off)")
            return rescaled
        return values
    stats = hu_stats(values)
    as_read = problems(stats)
    if not as_read:
        if rescaled is not None:
            outcome.notes.append(f"already HU: metadata RescaleSlope {meta.slope:g} / RescaleIntercept "
                                 f"{meta.intercept:g} not applied (it would give: {diagnosis(rescaled)})")
        outcome.hu = stats.to_dict()
        return values
    rescaled_stats = hu_stats(rescaled) if rescaled is not None else None
    if rescaled_stats is not None and not problems(rescaled_stats):
        outcome.applied.append(f"rescale slope {meta.slope:g} intercept {meta.intercept:g} (metadata; the values "
                               f"as read failed the HU check: {'; '.join(as_read)})")
        outcome.hu = rescaled_stats.to_dict()
        return rescaled
    hint = ("" if meta is None else f" (the metadata's slope {meta.slope:g} / intercept {meta.intercept:g} "
            "does not give HU either)")
    if mode == "error":
        message = (f"{path}: not a CT in Hounsfield units{hint}: {'; '.join(as_read)}; {diagnosis(values)}. "
                   "Pass --metadata CSV with this scan's RescaleSlope/RescaleIntercept (CT-RATE's "
                   "*_metadata.csv), or --hu-check warn if you know it is right")
        raise HUCheckError(message)
    chosen = rescaled if rescaled is not None else values
    outcome.notes.append(f"HU check failed ({'; '.join(as_read)}), kept because of --hu-check warn")
    outcome.hu = check_hu(chosen, path, "warn").to_dict()  # type: ignore[union-attr]
    return chosen


def _decide_affine(affine: np.ndarray, meta: VolumeMetadata | None, outcome: Outcome) -> np.ndarray:
    """The header's affine, or its directions with the metadata's spacing when the header's is wrong."""
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    if meta is None or meta.spacing is None:
        if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
            raise InputError(f"voxel spacing missing from the header ({zooms.tolist()}); give it with --metadata")
        return affine
    wanted = np.asarray(meta.spacing, dtype=np.float64)
    if np.all(np.isfinite(zooms)) and np.all(zooms > 0) and np.allclose(zooms, wanted, rtol=SPACING_RTOL):
        return affine
    directions = affine[:3, :3] / np.where(zooms > 0, zooms, 1.0)
    if not np.all(np.isfinite(directions)) or abs(np.linalg.det(directions)) < 0.5:
        directions = np.eye(3)
    fixed = affine.copy()
    fixed[:3, :3] = directions * wanted
    outcome.applied.append(f"spacing {np.round(zooms, 4).tolist()} -> {wanted.tolist()} mm (metadata)")
    return fixed


def _link(source: Path, target: Path) -> str:
    """Hard link where the filesystem allows it (survives moving the source), else a symbolic link."""
    temp = target.with_name(f".{target.name}.link")
    if temp.exists() or temp.is_symlink():
        temp.unlink()
    try:
        os.link(source, temp)
        kind = "hardlink"
    except OSError:
        os.symlink(source.resolve(), temp)
        kind = "symlink"
    os.replace(temp, target)
    return kind


def _write(values: np.ndarray, affine: np.ndarray, target: Path) -> None:
    """int16 HU where the values are whole numbers in range (as scanners store them), else float32."""
    integral = np.all(values == np.rint(values)) and values.min() >= -32768 and values.max() <= 32767
    image = nib.Nifti1Image(values.astype(np.int16 if integral else np.float32), affine)
    image.header.set_slope_inter(1.0, 0.0)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(target) as temp:
        nib.save(image, temp)


def ingest_one(source: Source, out_dir: Path, meta: VolumeMetadata | None, hu_check: str) -> Outcome:
    """Read, check, fix and write (or link) one scan into ``out_dir``; raises on a bad scan."""
    from stages.common.ids import safe_child

    outcome = Outcome(series=source.series)
    if source.kind == "dicom":
        values, affine = read_dicom(source)
        outcome.applied.append(f"DICOM -> NIfTI ({len(source.files)} slices; SimpleITK/GDCM applied the "
                               "series' RescaleSlope/RescaleIntercept)")
    else:
        image = load_volume(source.path, "CT")
        values, affine = read_array(image, source.path, np.float32), np.asarray(image.affine, dtype=np.float64)
        slope, inter = image.header.get_slope_inter()
        if slope not in (None, 1.0) or inter not in (None, 0.0):
            outcome.notes.append(f"header scl_slope {slope:g} / scl_inter {inter:g} applied by nibabel on reading")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{source.path}: CT holds NaN or infinite values")
    try:
        hu = _decide_values(values, source.path, meta, hu_check, outcome)
        new_affine = _decide_affine(affine, meta, outcome)
    except InputError as error:
        if str(error).startswith(str(source.path)):
            raise
        raise InputError(f"{source.path}: {error}") from error
    unchanged = source.kind == "nifti" and hu is values and new_affine is affine
    suffix = ".nii" if unchanged and source.path.name.lower().endswith(".nii") else ".nii.gz"
    target = safe_child(out_dir, source.scan_id, suffix)
    for stale in (safe_child(out_dir, source.scan_id, s) for s in (".nii", ".nii.gz")):
        if stale != target and (stale.exists() or stale.is_symlink()):
            stale.unlink()
    if unchanged:
        outcome.applied.append(f"{_link(source.path, target)} (no change needed)")
    else:
        _write(hu, new_affine, target)
    outcome.output = target.name
    return outcome
