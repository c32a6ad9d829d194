"""Where masks come from: the real TotalSegmentator API, or existing segmentations."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from stages.common.anatomy import TOTALSEG_TASK, totalseg_class_map
from stages.common.device import resolve_device
from stages.common.errors import SetupError
from stages.common.nifti import InputError, grid_mismatch, load_volume, read_array


class WeightsMissing(SetupError):
    """TotalSegmentator's weights are not installed; raised before the first scan."""


def _install_hint(missing: list[Path]) -> str:
    return (
        "TotalSegmentator weights are not installed (missing: "
        + ", ".join(str(p) for p in missing)
        + "). ctglip never downloads them by itself. Install them with TotalSegmentator's own "
        "tools on a machine with internet: `totalseg_download_weights -t total` (add `-t total_fast` "
        "for --fast), or copy a weights folder and point TOTALSEG_HOME_DIR (or TOTALSEG_WEIGHTS_PATH) "
        "at it; offline copies can be imported with `totalseg_import_weights -i WEIGHTS.zip`. "
        "Masks you already have can be used with `ctglip segment --engine import --from SRC`."
    )


def totalseg_weight_folders(fast: bool) -> list[Path]:
    """Folders the ``total`` task's weights must occupy, as TotalSegmentator resolves them."""
    from totalsegmentator.config import get_weights_dir
    from totalsegmentator.libs import TASK_ID_WEIGHTS_CONFIGS
    from totalsegmentator.python_api import get_task_config

    task_ids = get_task_config(TOTALSEG_TASK, fast=fast, quiet=True)["task_id"]
    task_ids = task_ids if isinstance(task_ids, list) else [task_ids]
    folders = []
    for task_id in task_ids:
        info = TASK_ID_WEIGHTS_CONFIGS[task_id]
        relative = Path(info.get("rel_path") or "") / info["foldername"]
        folders.append(get_weights_dir() / relative)
    return folders


def check_totalseg_weights(fast: bool) -> None:
    """Fail fast (never hang on a closed network) when the weights are absent."""
    missing = [folder for folder in totalseg_weight_folders(fast) if not folder.is_dir()]
    if missing:
        raise WeightsMissing(_install_hint(missing))


def totalseg_device(device: str) -> str:
    """A ctglip device name, resolved, in TotalSegmentator's words (``gpu:N``, ``cpu``, ``mps``)."""
    resolved = resolve_device(device)
    return f"gpu:{resolved.index or 0}" if resolved.type == "cuda" else resolved.type


def run_totalsegmentator(ct_path: Path, fast: bool, device: str) -> nib.Nifti1Image:
    """Segment one CT with the real TotalSegmentator API (multilabel, task ``total``)."""
    from totalsegmentator.config import set_config_key, setup_totalseg
    from totalsegmentator.python_api import totalsegmentator

    setup_totalseg()
    set_config_key("send_usage_stats", False)  # no telemetry from a research pipeline

    load_volume(ct_path, "CT")
    return totalsegmentator(input=ct_path, output=None, ml=True, fast=fast, task=TOTALSEG_TASK,
                            device=totalseg_device(device), quiet=True)


def load_imported_mask(source: Path, scan_id: str) -> tuple[nib.Nifti1Image, Path]:
    """An existing segmentation: ``SRC/<id>.nii.gz`` (multilabel) or ``SRC/<id>/<class>.nii.gz``."""
    for candidate in (source / f"{scan_id}.nii.gz", source / f"{scan_id}.nii"):
        if candidate.is_file():
            return load_volume(candidate, "mask"), candidate
    folder = source / scan_id
    if folder.is_dir():
        return _merge_class_folder(folder), folder
    raise InputError(f"{source}: no segmentation for scan {scan_id} "
                     f"(looked for {scan_id}.nii.gz and folder {scan_id}/)")


def _merge_class_folder(folder: Path) -> nib.Nifti1Image:
    """TotalSegmentator's per-class output folder -> one multilabel image with ``total`` ids."""
    id_of = {name: label_id for label_id, name in totalseg_class_map().items()}
    files = sorted(folder.glob("*.nii.gz"))
    if not files:
        raise InputError(f"{folder}: per-class folder holds no .nii.gz files")
    merged: np.ndarray | None = None
    reference: nib.Nifti1Image | None = None
    for path in files:
        name = path.name[: -len(".nii.gz")]
        if name not in id_of:
            raise InputError(f"{path}: {name!r} is not a TotalSegmentator '{TOTALSEG_TASK}' class name")
        image = load_volume(path, "mask")
        if reference is None:
            reference, merged = image, np.zeros(image.shape, dtype=np.uint8)
        elif (problem := grid_mismatch(reference, image)) is not None:
            raise InputError(f"{path}: {problem} (within one per-class folder)")
        merged[read_array(image, path, np.float32) > 0.5] = id_of[name]
    return nib.Nifti1Image(merged, reference.affine)


def validated_mask(ct: nib.Nifti1Image, mask: nib.Nifti1Image, mask_source: Path,
                   affine_tolerance_mm: float) -> nib.Nifti1Image:
    """Check a mask against its CT and return it as uint8 on exactly the CT's grid and affine."""
    problem = grid_mismatch(ct, mask, affine_tolerance_mm)
    if problem:
        raise InputError(f"{mask_source}: mask is not on the CT's grid: {problem}")
    data = read_array(mask, mask_source, np.float32)
    labels = np.rint(data)
    if np.any(np.abs(data - labels) > 1e-3):
        raise InputError(f"{mask_source}: mask holds non-integer values, not a label map")
    known = set(totalseg_class_map())
    unknown = sorted(set(np.unique(labels).astype(int).tolist()) - known - {0})
    if unknown:
        raise InputError(f"{mask_source}: label ids {unknown[:10]} are not TotalSegmentator "
                         f"'{TOTALSEG_TASK}' ids (1..{max(known)})")
    out = nib.Nifti1Image(labels.astype(np.uint8), ct.affine)
    out.set_qform(ct.affine, code=1)
    out.set_sform(ct.affine, code=1)
    return out
