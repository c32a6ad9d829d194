"""CT-RATE's ``*_metadata.csv``: per volume RescaleSlope, RescaleIntercept and voxel spacing.

``XYSpacing`` is written as a list, e.g. ``"[0.75, 0.75]"`` (DICOM PixelSpacing order: between
rows, between columns, i.e. y then x); ``ZSpacing`` is a number. Rows are keyed by ``VolumeName``
without ``.nii.gz``, the scan id ``ingest`` gives that file.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stages.common.nifti import InputError

REQUIRED = ("VolumeName", "RescaleSlope", "RescaleIntercept")


@dataclass(frozen=True)
class VolumeMetadata:
    slope: float
    intercept: float
    spacing: tuple[float, float, float] | None  # x, y, z in mm (voxel axes 0, 1, 2), None when absent


def _number(value: object, column: str, row: int, path: Path) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InputError(f"{path}: row {row}: {column} {value!r} is not a number")
    return number


def _xy(value: object, row: int, path: Path) -> tuple[float, float]:
    """``"[0.75, 0.75]"`` (or ``0.75``) -> (x, y) spacing."""
    try:
        parsed = ast.literal_eval(str(value).strip()) if isinstance(value, str) else value
        pair = [float(v) for v in (parsed if isinstance(parsed, (list, tuple)) else [parsed, parsed])]
    except (ValueError, SyntaxError, TypeError):
        pair = []
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise InputError(f"{path}: row {row}: XYSpacing {value!r} is not '[row, column]' spacing in mm")
    return pair[1], pair[0]  # PixelSpacing is (between rows = y, between columns = x)


def read_metadata(path: Path) -> dict[str, VolumeMetadata]:
    """Scan id -> its rescale and spacing; duplicate or malformed rows stop the run."""
    from stages.common.ids import scan_id_from_path, validate_scan_id

    try:
        table = pd.read_csv(path)
    except Exception as error:  # pandas raises many types for broken files
        raise InputError(f"{path}: cannot read metadata CSV ({type(error).__name__}: {error})") from error
    missing = [column for column in REQUIRED if column not in table.columns]
    if missing:
        raise InputError(f"{path}: metadata CSV lacks columns {missing}; columns present: {list(table.columns)}")
    out: dict[str, VolumeMetadata] = {}
    for row, record in enumerate(table.to_dict("records"), start=1):
        name = str(record["VolumeName"]).strip()
        scan_id = scan_id_from_path(name) if name.endswith((".nii", ".nii.gz")) else validate_scan_id(name)
        if scan_id in out:
            raise InputError(f"{path}: VolumeName {name} appears more than once")
        spacing = None
        if "XYSpacing" in record and "ZSpacing" in record and not pd.isna(record["XYSpacing"]):
            x, y = _xy(record["XYSpacing"], row, path)
            z = _number(record["ZSpacing"], "ZSpacing", row, path)
            spacing = (x, y, abs(z))
        out[scan_id] = VolumeMetadata(_number(record["RescaleSlope"], "RescaleSlope", row, path),
                                      _number(record["RescaleIntercept"], "RescaleIntercept", row, path), spacing)
    return out
