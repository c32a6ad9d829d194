"""Find what to ingest: NIfTI files and DICOM series under a folder, or the paths a list names.

One DICOM series is one folder's set of files sharing a SeriesInstanceUID. When a study holds
several series (localizer, dose report, lung and soft-tissue reconstructions ...), the CT series
is chosen: modality CT, not a localizer/scout or secondary capture, axial, most slices, then
thinnest slices; every other series is recorded with the reason it was passed over.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common.ids import InvalidScanId, is_nifti_name, scan_id_from_path, validate_scan_id
from stages.common.nifti import InputError

LIST_SUFFIXES = (".txt", ".csv", ".lst")
CT_IMAGE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}  # CT, enhanced CT
SKIPPED_IMAGE_TYPES = {"LOCALIZER", "SCOUT", "SCREEN SAVE", "DOSE_INFO", "SECONDARY"}
MIN_SLICES = 3


@dataclass
class Source:
    """One scan to ingest: a NIfTI file, or the DICOM files of the chosen series."""

    scan_id: str
    kind: str  # "nifti" or "dicom"
    path: Path  # the NIfTI file, or the folder of the chosen series
    files: list[Path] = field(default_factory=list)  # DICOM slices (sorted by GDCM), empty for NIfTI
    series: dict[str, Any] = field(default_factory=dict)  # the choice and the series passed over


@dataclass
class Discovery:
    sources: list[Source]
    invalid: list[tuple[str, str]]  # (path, reason): ids that break the shared id rules


def discover(src: Path) -> Discovery:
    """Every scan under ``src`` (a folder or a list file); duplicate scan ids stop the run."""
    src = Path(src)
    roots = _read_list(src) if src.is_file() else [src]
    sources: list[Source] = []
    invalid: list[tuple[str, str]] = []
    for root in roots:
        found = _walk(root)
        sources += found.sources
        invalid += found.invalid
    by_id: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        by_id[source.scan_id.lower()].append(source)  # X and x would share a file on case-insensitive disks
    clashes = {scan_id: group for scan_id, group in by_id.items() if len(group) > 1}
    if clashes:
        lines = [f"{group[0].scan_id}: " + " and ".join(str(s.path) for s in group) for _, group in sorted(clashes.items())]
        raise InputError(f"{src}: {len(clashes)} scan id(s) found more than once (output CT_DIR/<scan_id>.nii.gz "
                         f"would be ambiguous); rename or list the ones you want: {'; '.join(lines[:10])}")
    return Discovery(sorted(sources, key=lambda s: s.scan_id), invalid)


def _read_list(path: Path) -> list[Path]:
    """Paths from a ``.txt`` (one per line) or ``.csv`` (column ``path``, else the first one)."""
    if not path.name.endswith(LIST_SUFFIXES):
        if is_nifti_name(path.name):
            return [path]
        raise InputError(f"{path}: expected a folder, a NIfTI file or a .txt/.csv list of paths")
    if path.suffix == ".csv":
        table = pd.read_csv(path, dtype=str)
        column = "path" if "path" in table.columns else table.columns[0]
        entries = [str(v).strip() for v in table[column].dropna()]
    else:
        entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    paths = [(path.parent / entry) if not os.path.isabs(entry) else Path(entry) for entry in entries]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{path}: {len(missing)} listed path(s) do not exist: {', '.join(missing[:5])}")
    return paths


def _walk(root: Path) -> Discovery:
    if root.is_file():
        return _nifti_sources([root])
    niftis: list[Path] = []
    series: list[dict[str, Any]] = []
    unreadable: list[tuple[str, str]] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        names = sorted(n for n in names if not n.startswith("."))
        niftis += [Path(folder) / n for n in names if is_nifti_name(n)]
        others = [Path(folder) / n for n in names if not is_nifti_name(n)]
        if any(_is_dicom(p) for p in others[:20]):
            try:
                series += _series_in(Path(folder))
            except InputError as error:  # one damaged series fails alone
                unreadable.append((folder, str(error)))
    found = _nifti_sources(niftis)
    dicom = _choose_per_study(series)
    return Discovery(found.sources + dicom.sources, found.invalid + dicom.invalid + unreadable)


def _nifti_sources(paths: list[Path]) -> Discovery:
    sources, invalid = [], []
    for path in paths:
        try:
            sources.append(Source(scan_id_from_path(path), "nifti", path))
        except InvalidScanId as error:
            invalid.append((str(path), str(error)))
    return Discovery(sources, invalid)


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _series_in(folder: Path) -> list[dict[str, Any]]:
    """Each DICOM series in ``folder`` with what the choice needs (headers only, no pixels)."""
    import pydicom
    import SimpleITK as sitk

    out = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        files = [Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)]
        try:
            header = pydicom.dcmread(str(files[0]), stop_before_pixels=True, force=True)
        except Exception as error:  # pydicom raises many types for damaged headers
            raise InputError(f"{files[0]}: unreadable DICOM header ({type(error).__name__}: {error})") from error
        orientation = [float(v) for v in getattr(header, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
        normal = np.cross(orientation[:3], orientation[3:])
        out.append({
            "folder": folder, "files": files, "series_uid": uid,
            "study_uid": str(getattr(header, "StudyInstanceUID", folder)),
            "modality": str(getattr(header, "Modality", "")),
            "image_type": [str(v).upper() for v in getattr(header, "ImageType", [])],
            "sop_class": str(getattr(header, "SOPClassUID", "")),
            "description": str(getattr(header, "SeriesDescription", "")),
            "slices": len(files),
            "thickness": float(getattr(header, "SliceThickness", 0) or 0),
            "axial": bool(abs(normal[2]) > 0.9),
        })
    return out


def _rejection(series: dict[str, Any]) -> str | None:
    if series["modality"] != "CT":
        return f"modality {series['modality'] or 'missing'}, not CT"
    skipped = SKIPPED_IMAGE_TYPES & set(series["image_type"])
    if skipped:
        return f"image type {'/'.join(sorted(skipped))}"
    if series["sop_class"] and series["sop_class"] not in CT_IMAGE_SOP_CLASSES:
        return f"SOP class {series['sop_class']} is not a CT image (dose report, secondary capture?)"
    if not series["axial"]:
        return "not axial"
    if series["slices"] < MIN_SLICES:
        return f"{series['slices']} slice(s)"
    return None


def _describe(series: dict[str, Any]) -> dict[str, Any]:
    return {"folder": str(series["folder"]), "series_uid": series["series_uid"],
            "description": series["description"], "slices": series["slices"], "thickness_mm": series["thickness"]}


def _choose_per_study(series: list[dict[str, Any]]) -> Discovery:
    """One CT series per study, named after the folder that holds all of the study's series."""
    studies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in series:
        studies[entry["study_uid"]].append(entry)
    sources, invalid = [], []
    for group in studies.values():
        folder = Path(os.path.commonpath([str(entry["folder"]) for entry in group]))
        candidates = sorted((e for e in group if _rejection(e) is None), key=lambda e: (-e["slices"], e["thickness"]))
        passed = [{**_describe(e), "reason": _rejection(e) or "fewer slices or thicker than the chosen series"}
                  for e in group if not candidates or e is not candidates[0]]
        if not candidates:
            invalid.append((str(folder), f"{folder}: no CT series among {len(group)} DICOM series ("
                            + "; ".join(f"{p['description'] or p['series_uid']}: {p['reason']}" for p in passed) + ")"))
            continue
        chosen = candidates[0]
        try:
            scan_id = validate_scan_id(folder.name)
        except InvalidScanId as error:
            invalid.append((str(folder), f"{folder}: {error}"))
            continue
        sources.append(Source(scan_id, "dicom", chosen["folder"], chosen["files"],
                              {"chosen": _describe(chosen), "passed_over": passed}))
    return Discovery(sources, invalid)
