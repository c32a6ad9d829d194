"""Scan ids: the CT file name without ``.nii.gz``/``.nii``, validated so that an id
taken from data can never make a stage write outside its output folder."""
from __future__ import annotations

import re
from pathlib import Path

from stages.common.errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-+]*$")


class InvalidScanId(InputError):
    """An id that is empty, has path separators, ``..`` or characters unsafe in file names."""


def validate_scan_id(scan_id: str) -> str:
    """Return ``scan_id`` unchanged if it is safe as a file name; raise otherwise."""
    if not isinstance(scan_id, str) or not scan_id:
        raise InvalidScanId(f"scan id {scan_id!r} is empty or not a string")
    if "/" in scan_id or "\\" in scan_id or ".." in scan_id or not _SAFE_ID.match(scan_id):
        raise InvalidScanId(
            f"scan id {scan_id!r} is not allowed: use letters, digits, '.', '_', '-', '+', "
            "no path separators and no '..'"
        )
    return scan_id


def is_nifti_name(name: str) -> bool:
    """``*.nii.gz`` or ``*.nii``, in any letter case (``X.NII.GZ`` too)."""
    return name.lower().endswith(NIFTI_SUFFIXES)


def scan_id_from_path(path: str | Path) -> str:
    """Scan id of a NIfTI file name (``abc.nii.gz`` -> ``abc``, ``ABC.NII.GZ`` -> ``ABC``), validated."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return validate_scan_id(name[: -len(suffix)])
    raise InvalidScanId(f"{path}: not a NIfTI file name (expected .nii.gz or .nii)")


def safe_child(folder: Path, scan_id: str, suffix: str) -> Path:
    """``folder/<scan_id><suffix>``, guaranteed to stay inside ``folder``."""
    validate_scan_id(scan_id)
    target = (folder / f"{scan_id}{suffix}").resolve()
    if target.parent != folder.resolve():
        raise InvalidScanId(f"scan id {scan_id!r} would write outside {folder}")
    return target

