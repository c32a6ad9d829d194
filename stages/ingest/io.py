"""Files of ``ctglip ingest`` beside the scans in CT_DIR: ``status/<scan_id>.json`` (one per scan,
so shards never share a file), ``manifest.csv`` and ``manifest.json``. The only module that
reads or writes them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from stages.common.atomic import atomic_path, write_json_atomic
from stages.common.ids import safe_child
from stages.common.manifest import ItemStatus
from stages.common.spreadsheet import spreadsheet_row

MANIFEST_CSV_COLUMNS = ["scan_id", "status", "kind", "source", "output", "applied", "notes", "seconds", "error"]


def _status_path(out_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(out_dir) / "status", scan_id, ".json")


def write_status(out_dir: Path, item: ItemStatus) -> None:
    (Path(out_dir) / "status").mkdir(parents=True, exist_ok=True)
    write_json_atomic(_status_path(out_dir, item.item_id), {
        "scan_id": item.item_id, "status": item.status, "error": item.error,
        "seconds": round(item.seconds, 3), **item.extra})


def read_status(out_dir: Path, scan_id: str) -> dict[str, Any] | None:
    path = _status_path(out_dir, scan_id)
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def all_statuses(out_dir: Path) -> list[ItemStatus]:
    """Every scan's latest status (all shards), sorted by id."""
    folder = Path(out_dir) / "status"
    items = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(path.read_text(encoding="utf-8"))
        extra = {k: v for k, v in data.items() if k not in {"scan_id", "status", "error", "seconds"}}
        items.append(ItemStatus(data["scan_id"], data["status"], data.get("error", ""),
                                float(data.get("seconds", 0.0)), extra))
    return items


def write_manifest_csv(out_dir: Path, items: list[ItemStatus]) -> None:
    rows = [spreadsheet_row({"scan_id": i.item_id, "status": i.status, "kind": i.extra.get("kind", ""),
             "source": i.extra.get("source", ""), "output": i.extra.get("output", ""),
             "applied": "; ".join(i.extra.get("applied", [])), "notes": "; ".join(i.extra.get("notes", [])),
             "seconds": round(i.seconds, 3), "error": i.error}) for i in items]
    with atomic_path(Path(out_dir) / "manifest.csv") as temp:
        pd.DataFrame(rows, columns=MANIFEST_CSV_COLUMNS).to_csv(temp, index=False)
