"""``ctglip synth --layout ctrate``: the same synthetic scans, shipped the way CT-RATE ships its data.

CT-RATE's folder (``dataset/`` on its hub page) nests volumes by patient and reconstruction,
``train/train_1/train_1_a/train_1_a_1.nii.gz``, beside a reports CSV, a wide table of 18 scan-level
abnormality labels and a metadata CSV. Its first release stored raw values that need the metadata's
RescaleSlope/RescaleIntercept; this layout does the same (int16 stored = HU + 1024, intercept
-1024) and also writes a wrong header spacing (1 mm) that only the metadata corrects, so a pipeline
run from this folder proves that ``ctglip ingest --metadata`` is needed and enough. The truth (HU
scans, masks, long labels) stays in ``ct/``, ``masks/``, ``labels.csv`` under the same ids.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from stages.common.atomic import atomic_path
from stages.common.ids import validate_scan_id

DATASET_DIR = "dataset"
SPLIT = "train"
REPORTS_CSV = f"radiology_text_reports/{SPLIT}_reports.csv"
LABELS_CSV = f"multi_abnormality_labels/{SPLIT}_predicted_labels.csv"
METADATA_CSV = f"metadata/{SPLIT}_metadata.csv"
RESCALE_INTERCEPT = -1024
REPORT_COLUMNS = ("VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN")
METADATA_COLUMNS = ("VolumeName", "Manufacturer", "Rows", "Columns", "NumberofSlices", "XYSpacing", "ZSpacing",
                    "RescaleIntercept", "RescaleSlope", "RescaleType")

# synth (organ unit, phrase) -> wide label column: CT-RATE's names where CT-RATE has the finding,
# descriptive names for synth-only findings (agreed with zeroshot's label map)
LABEL_NAMES: dict[tuple[str, str], str] = {
    ("lung_left", "nodule"): "Lung nodule", ("lung_right", "nodule"): "Lung nodule",
    ("lung_left", "pleural effusion"): "Pleural effusion", ("lung_right", "pleural effusion"): "Pleural effusion",
    ("lung_left", "emphysema"): "Emphysema", ("lung_right", "emphysema"): "Emphysema",
    ("lung_left", "consolidation"): "Consolidation", ("lung_right", "consolidation"): "Consolidation",
    ("heart", "cardiomegaly"): "Cardiomegaly", ("heart", "pericardial effusion"): "Pericardial effusion",
    ("aorta", "calcification"): "Arterial wall calcification",
    ("liver", "hypodense lesion"): "Liver hypodense lesion", ("liver", "steatosis"): "Hepatic steatosis",
    ("kidney_left", "cyst"): "Kidney cyst", ("kidney_right", "cyst"): "Kidney cyst",
    ("kidney_left", "stone"): "Kidney stone", ("kidney_right", "stone"): "Kidney stone",
    ("spleen", "splenomegaly"): "Splenomegaly", ("gallbladder", "gallstone"): "Gallstone",
}


def label_columns() -> list[str]:
    return list(dict.fromkeys(LABEL_NAMES.values()))


def volume_id(index: int) -> str:
    """CT-RATE style id of scan ``index``: patient ``index + 1``, reconstruction ``a``, volume 1."""
    return validate_scan_id(f"{SPLIT}_{index + 1}_a_1")


def volume_path(out_dir: Path, scan_id: str) -> Path:
    patient, reconstruction = scan_id.rsplit("_", 2)[0], scan_id.rsplit("_", 1)[0]
    return Path(out_dir) / DATASET_DIR / SPLIT / patient / reconstruction / f"{scan_id}.nii.gz"


def write_stored_volume(out_dir: Path, scan_id: str, hu: np.ndarray, affine: np.ndarray) -> None:
    """int16 stored values (HU - intercept), no NIfTI scaling, header spacing 1 mm (wrong on purpose)."""
    header_affine = affine.copy()
    header_affine[:3, :3] = np.sign(affine[:3, :3])
    stored = (hu.astype(np.int32) - RESCALE_INTERCEPT).astype(np.int16)
    image = nib.Nifti1Image(stored, header_affine)
    image.header.set_slope_inter(1.0, 0.0)
    image.set_qform(header_affine, code=1)
    image.set_sform(header_affine, code=1)
    path = volume_path(out_dir, scan_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        temp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))


def metadata_row(scan_id: str, shape: tuple[int, ...], spacing: tuple[float, ...]) -> dict[str, Any]:
    return {"VolumeName": f"{scan_id}.nii.gz", "Manufacturer": "ctglip synth", "Rows": shape[1],
            "Columns": shape[0], "NumberofSlices": shape[2], "XYSpacing": f"[{spacing[1]}, {spacing[0]}]",
            "ZSpacing": spacing[2], "RescaleIntercept": RESCALE_INTERCEPT, "RescaleSlope": 1, "RescaleType": "HU"}


def report_row(report: dict[str, str]) -> dict[str, str]:
    return {"VolumeName": f"{report['scan_id']}.nii.gz", "ClinicalInformation_EN": "", "Technique_EN": "",
            "Findings_EN": report["findings"], "Impressions_EN": report["impression"]}


def wide_label_row(scan_id: str, labels: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per volume: 1 where any organ unit of the scan has the finding."""
    row: dict[str, Any] = {"VolumeName": f"{scan_id}.nii.gz", **{name: 0 for name in label_columns()}}
    for label in labels:
        if label["present"]:
            row[LABEL_NAMES[(label["organ"], label["abnormality"])]] = 1
    return row


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_tables(out_dir: Path, records: list[dict[str, Any]]) -> None:
    """Reports, wide labels and metadata CSVs of the scans written (``records`` from synth's run)."""
    root = Path(out_dir) / DATASET_DIR
    _write_csv(root / REPORTS_CSV, list(REPORT_COLUMNS), [report_row(r["report"]) for r in records])
    _write_csv(root / LABELS_CSV, ["VolumeName", *label_columns()],
               [wide_label_row(r["scan_id"], r["labels"]) for r in records])
    _write_csv(root / METADATA_CSV, list(METADATA_COLUMNS), [r["ctrate_metadata"] for r in records])
