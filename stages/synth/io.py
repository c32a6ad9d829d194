"""Files of ``ctglip synth``; the only module that reads or writes them.

``ct/<scan_id>.nii.gz`` (int16 HU), ``masks/<scan_id>.nii.gz`` (uint8 TotalSegmentator ``total``
ids, label names in the header extension as TotalSegmentator writes them), ``reports.csv``,
``labels.csv``, ``abnormalities.json`` and ``manifest.json``. NIfTI files are gzipped with a
zero timestamp so that the same arguments give byte-identical files.
"""
from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from totalsegmentator.nifti_ext_header import add_label_map_to_nifti

from stages.common.anatomy import organ_units, totalseg_class_map
from stages.common.atomic import atomic_path, write_text_atomic
from stages.common.errors import InputError
from stages.common.ids import safe_child
from stages.common.labels import LABEL_COLUMNS, read_labels, read_text_csv
from stages.common.manifest import ok_items, read_manifest

CT_DIR = "ct"
MASK_DIR = "masks"
REPORTS_CSV = "reports.csv"
LABELS_CSV = "labels.csv"
ABNORMALITIES_JSON = "abnormalities.json"
REPORT_COLUMNS = ("scan_id", "findings", "impression")
GZIP_LEVEL = 1


class SynthInputError(InputError):
    """A synth output file that is missing or malformed; the message names the file."""


def ct_path(out_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(out_dir) / CT_DIR, scan_id, ".nii.gz")


def mask_path(out_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(out_dir) / MASK_DIR, scan_id, ".nii.gz")


def _nifti_gz(image: nib.Nifti1Image, affine: np.ndarray) -> bytes:
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0)


def write_ct(path: Path, hu: np.ndarray, affine: np.ndarray) -> None:
    """CT in Hounsfield units as int16 (no intensity scaling)."""
    image = nib.Nifti1Image(hu.astype(np.int16, copy=False), affine)
    image.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as temp:
        temp.write_bytes(_nifti_gz(image, affine))


def write_mask(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    """Label map with TotalSegmentator ids and their class names in the header."""
    image = nib.Nifti1Image(labels.astype(np.uint8, copy=False), affine)
    image.header.set_intent("label")
    add_label_map_to_nifti(image, totalseg_class_map())
    with atomic_path(path) as temp:
        temp.write_bytes(_nifti_gz(image, affine))


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: row[key] for key in columns} for row in rows)


def write_reports(path: Path, rows: list[dict[str, Any]]) -> None:
    """``scan_id, findings, impression``: one row per scan."""
    _write_csv(path, REPORT_COLUMNS, rows)


def write_labels(path: Path, rows: list[dict[str, Any]]) -> None:
    """``scan_id, organ, abnormality, present`` (0/1): one row per visible organ unit and abnormality type."""
    _write_csv(path, LABEL_COLUMNS, [{**row, "present": int(bool(row["present"]))} for row in rows])


def write_abnormalities(path: Path, space: dict[str, list[str]], generator_version: str) -> None:
    """The label space (``abnormalities``) plus each organ's display name used in prompts."""
    units = organ_units()
    data = {"generator_version": generator_version, "abnormalities": space,
            "display_names": {organ: units[organ].display_name for organ in space}}
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_reports(path: Path) -> pd.DataFrame:
    return read_text_csv(Path(path), REPORT_COLUMNS, "reports CSV", SynthInputError)


def read_abnormalities(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        space = data["abnormalities"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise SynthInputError(f"{path}: not a synth abnormalities.json ({error})") from error
    return {organ: list(phrases) for organ, phrases in space.items()}


@dataclass(frozen=True)
class SynthDataset:
    """A validated ``ctglip synth`` folder: paths of the scans marked ok, reports, labels, label space."""

    folder: Path
    manifest: dict[str, Any]
    scan_ids: list[str]
    reports: pd.DataFrame
    labels: pd.DataFrame
    label_space: dict[str, list[str]]

    def ct(self, scan_id: str) -> Path:
        return ct_path(self.folder, scan_id)

    def mask(self, scan_id: str) -> Path:
        return mask_path(self.folder, scan_id)


def read_dataset(folder: Path) -> SynthDataset:
    """Open a synth output folder (stops with "run `ctglip synth` first" when it is not one)."""
    folder = Path(folder)
    manifest = read_manifest(folder, "synth")
    return SynthDataset(folder=folder, manifest=manifest, scan_ids=sorted(ok_items(manifest)),
                        reports=read_reports(folder / REPORTS_CSV), labels=read_labels(folder / LABELS_CSV),
                        label_space=read_abnormalities(folder / ABNORMALITIES_JSON))
