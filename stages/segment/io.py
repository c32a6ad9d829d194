"""Files of ``ctglip segment``: ``<scan_id>.nii.gz`` masks, ``status/<scan_id>.json``,
``manifest.csv`` and ``manifest.json``. The only module that reads or writes them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.common.atomic import atomic_path
from stages.common.ids import safe_child
from stages.common.item_status import all_statuses, read_status, write_status  # noqa: F401 (this stage's API)
from stages.common.manifest import ItemStatus, read_manifest

MANIFEST_CSV_COLUMNS = ["scan_id", "status", "engine", "seconds", "error"]


def mask_path(masks_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(masks_dir), scan_id, ".nii.gz")


def write_manifest_csv(masks_dir: Path, items: list[ItemStatus]) -> None:
    rows = [{"scan_id": i.item_id, "status": i.status, "engine": i.extra.get("engine", ""),
             "seconds": round(i.seconds, 3), "error": i.error} for i in items]
    with atomic_path(Path(masks_dir) / "manifest.csv") as temp:
        pd.DataFrame(rows, columns=MANIFEST_CSV_COLUMNS).to_csv(temp, index=False)


def read_masks_dir(masks_dir: Path) -> dict[str, Path]:
    """Validated ``ctglip segment`` output: scan id -> mask path for every ``ok`` scan."""
    manifest = read_manifest(Path(masks_dir), "segment")
    return {scan_id: mask_path(masks_dir, scan_id)
            for scan_id, item in manifest["items"].items() if item.get("status") == "ok"}
