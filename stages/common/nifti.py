"""NIfTI loading with errors that name the file and the problem."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


class InputError(ValueError):
    """A bad input file; the message starts with the file's path."""


def load_volume(path: Path, what: str = "CT") -> nib.Nifti1Image:
    """Load a 3-D NIfTI (a 4-D file with one frame is squeezed); clear error otherwise."""
    try:
        image = nib.load(str(path))
        shape = image.shape
    except Exception as error:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: cannot read {what} NIfTI ({type(error).__name__}: {error})") from error
    if len(shape) == 4 and shape[3] == 1:
        image = nib.Nifti1Image(np.asanyarray(image.dataobj)[..., 0], image.affine, image.header)
        shape = image.shape
    if len(shape) != 3:
        raise InputError(f"{path}: {what} must be a 3-D volume, got shape {tuple(shape)}")
    if min(shape) < 2:
        raise InputError(f"{path}: {what} has a degenerate shape {tuple(shape)} (a 2-D image?)")
    return image


def read_array(image: nib.Nifti1Image, path: Path, dtype: type = np.float32) -> np.ndarray:
    """Voxel data as ``dtype``; truncated/corrupt payloads raise :class:`InputError`."""
    try:
        return np.asanyarray(image.dataobj).astype(dtype, copy=False)
    except Exception as error:
        raise InputError(f"{path}: voxel data unreadable ({type(error).__name__}: {error})") from error


def grid_mismatch(a: nib.Nifti1Image, b: nib.Nifti1Image, affine_tol_mm: float = 1e-3) -> str | None:
    """Why two images are not on the same voxel grid, or None when they are."""
    if tuple(a.shape[:3]) != tuple(b.shape[:3]):
        return f"shape {tuple(b.shape[:3])} differs from the CT's {tuple(a.shape[:3])}"
    diff = float(np.max(np.abs(a.affine - b.affine)))
    if diff > affine_tol_mm:
        return f"affine differs from the CT's by up to {diff:.4g} mm (tolerance {affine_tol_mm} mm)"
    return None
