"""Per-item status files, ``FOLDER/status/<item_id>.json``: one file per item, written atomically
right after the item, so shards of one job never share a file and a killed run resumes from them.
Used by the stages that process one scan at a time into a shared folder (segment, ingest)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.common.atomic import write_json_atomic
from stages.common.ids import safe_child
from stages.common.manifest import ItemStatus

_FIELDS = {"scan_id", "status", "error", "seconds"}


def _status_path(folder: Path, item_id: str) -> Path:
    return safe_child(Path(folder) / "status", item_id, ".json")


def write_status(folder: Path, item: ItemStatus) -> None:
    (Path(folder) / "status").mkdir(parents=True, exist_ok=True)
    write_json_atomic(_status_path(folder, item.item_id), {
        "scan_id": item.item_id, "status": item.status, "error": item.error,
        "seconds": round(item.seconds, 3), **item.extra})


def read_status(folder: Path, item_id: str) -> dict[str, Any] | None:
    """The item's last status, or None when it has none (or a damaged one: the item is redone)."""
    path = _status_path(folder, item_id)
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def all_statuses(folder: Path) -> list[ItemStatus]:
    """Every item's latest status (all shards), sorted by id."""
    status_dir = Path(folder) / "status"
    items = []
    for path in sorted(status_dir.glob("*.json")) if status_dir.is_dir() else []:
        data = json.loads(path.read_text(encoding="utf-8"))
        extra = {k: v for k, v in data.items() if k not in _FIELDS}
        items.append(ItemStatus(data["scan_id"], data["status"], data.get("error", ""),
                                float(data.get("seconds", 0.0)), extra))
    return items
