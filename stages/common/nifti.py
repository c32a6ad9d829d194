"""NIfTI loading with errors that name the file and the problem."""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from stages.common.errors import InputError

__all__ = ["InputError", "grid_mismatch", "load_volume", "read_array"]


def load_volume(path: Path, what: str = "CT") -> nib.Nifti1Image:
    """Load a 3-D NIfTI (a 4-D file with one frame is squeezed); clear error otherwise."""
    try:
        image = nib.load(str(path))
        shape = image.shape
    except Exception as error:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: cannot read {what} NIfTI ({type(error).__name__}: {error})") from error
    problem = geometry_problem(path, image)
    if problem:
        raise InputError(f"{path}: {what} {problem}")
    if len(shape) == 4 and shape[3] == 1:
        image = nib.Nifti1Image(np.asanyarray(image.dataobj)[..., 0], image.affine, image.header)
        shape = image.shape
    if len(shape) != 3:
        raise InputError(f"{path}: {what} must be a 3-D volume, got shape {tuple(shape)}")
    if min(shape) < 2:
        raise InputError(f"{path}: {what} has a degenerate shape {tuple(shape)} (a 2-D image?)")
    return image


def geometry_problem(path: Path, image: nib.spatialimages.SpatialImage) -> str | None:
    """Why the file's voxel size or orientation cannot be trusted, or None.

    nibabel silently turns a zero ``pixdim`` into 1 mm and a negative one into its absolute
    value, and invents an orientation when both ``qform_code`` and ``sform_code`` are 0, so
    the raw header is read too: a wrong voxel size scales every organ volume and crop.
    """
    if isinstance(image.header, nib.Nifti1Header):  # NIfTI-2 headers subclass it
        with ImageOpener(str(path)) as handle:
            raw = type(image.header).from_fileobj(handle, check=False)
        pixdim = [float(value) for value in raw["pixdim"][1:4]]
        valid_size = all(math.isfinite(value) and value > 0 for value in pixdim)
        if int(raw["qform_code"]) == 0 and int(raw["sform_code"]) == 0:
            size = "" if valid_size else f" nor a valid voxel size (pixdim {pixdim}; it would be read as 1 mm)"
            return (f"header has no orientation (qform_code and sform_code are 0){size}; rewrite the file with "
                    "its real affine (e.g. converted again from the DICOM series)")
        if int(raw["sform_code"]) == 0 and not valid_size:
            return f"voxel size (pixdim) {pixdim} mm must be finite and positive"
    matrix = np.asarray(image.affine, dtype=float)[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if not np.all(np.isfinite(image.affine)) or np.any(spacing <= 0) or abs(np.linalg.det(matrix)) < 1e-12:
        return f"affine gives no valid voxel size (column lengths {spacing.round(4).tolist()} mm)"
    return None


def check_voxel_data(path: Path, image: nib.spatialimages.SpatialImage, what: str = "CT") -> None:
    """Decompress the whole file once, keeping nothing, so a truncated or corrupt payload fails
    here with the file named (nibabel reads the header only until the voxels are used)."""
    expected = int(image.header.get_data_offset()) + int(np.prod(image.shape)) * image.get_data_dtype().itemsize
    size = 0
    try:
        with ImageOpener(str(path)) as handle:
            while chunk := handle.read(1 << 24):
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: {what} file is truncated or corrupt ({type(error).__name__}: {error})") from error
    if size < expected:
        raise InputError(f"{path}: {what} file is truncated ({size} bytes, its header needs {expected})")


def read_array(image: nib.Nifti1Image, path: Path, dtype: type = np.float32) -> np.ndarray:
    """Voxel data as ``dtype``; truncated/corrupt payloads raise :class:`InputError`."""
    try:
        return np.asanyarray(image.dataobj).astype(dtype, copy=False)
    except Exception as error:
        truncated = "file is truncated: " if isinstance(error, EOFError) else ""
        raise InputError(f"{path}: {truncated}voxel data unreadable ({type(error).__name__}: {error})") from error


def grid_mismatch(a: nib.Nifti1Image, b: nib.Nifti1Image, affine_tol_mm: float = 1e-3) -> str | None:
    """Why two images are not on the same voxel grid, or None when they are."""
    if tuple(a.shape[:3]) != tuple(b.shape[:3]):
        return f"shape {tuple(b.shape[:3])} differs from the CT's {tuple(a.shape[:3])}"
    diff = float(np.max(np.abs(a.affine - b.affine)))
    if diff > affine_tol_mm:
        return f"affine differs from the CT's by up to {diff:.4g} mm (tolerance {affine_tol_mm} mm)"
    return None
