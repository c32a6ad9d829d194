"""Files of ``ctglip segment``: ``<scan_id>.nii.gz`` masks, ``status/<scan_id>.json``,
``manifest.csv`` and ``manifest.json``. The only module that reads or writes them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from stages.common.atomic import atomic_path, write_json_atomic
from stages.common.ids import safe_child
from stages.common.manifest import ItemStatus, read_manifest

MANIFEST_CSV_COLUMNS = ["scan_id", "status", "engine", "seconds", "error"]


def mask_path(masks_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(masks_dir), scan_id, ".nii.gz")


def _status_path(masks_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(masks_dir) / "status", scan_id, ".json")


def write_status(masks_dir: Path, item: ItemStatus) -> None:
    """Per-scan status, written atomically right after the scan; shards never share a file."""
    (Path(masks_dir) / "status").mkdir(parents=True, exist_ok=True)
    write_json_atomic(_status_path(masks_dir, item.item_id), {
        "scan_id": item.item_id, "status": item.status, "error": item.error,
        "seconds": round(item.seconds, 3), **item.extra,
    })


def read_status(masks_dir: Path, scan_id: str) -> dict[str, Any] | None:
    path = _status_path(masks_dir, scan_id)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def all_statuses(masks_dir: Path) -> list[ItemStatus]:
    """Every scan's latest status (all shards), sorted by id."""
    folder = Path(masks_dir) / "status"
    items = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(path.read_text(encoding="utf-8"))
        extra = {k: v for k, v in data.items() if k not in {"scan_id", "status", "error", "seconds"}}
        items.append(ItemStatus(data["scan_id"], data["status"], data.get("error", ""),
                                float(data.get("seconds", 0.0)), extra))
    return items


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
