"""Files of ``ctglip ingest`` beside the scans in CT_DIR: ``status/<scan_id>.json`` (stages.common.item_status,
so shards never share a file), ``manifest.csv`` and ``manifest.json``. The only module that
reads or writes them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.common.atomic import atomic_path
from stages.common.item_status import all_statuses, read_status, write_status  # noqa: F401 (this stage's API)
from stages.common.manifest import ItemStatus
from stages.common.spreadsheet import spreadsheet_row

MANIFEST_CSV_COLUMNS = ["scan_id", "status", "kind", "source", "output", "applied", "notes", "seconds", "error"]


def write_manifest_csv(out_dir: Path, items: list[ItemStatus]) -> None:
    rows = [spreadsheet_row({"scan_id": i.item_id, "status": i.status, "kind": i.extra.get("kind", ""),
             "source": i.extra.get("source", ""), "output": i.extra.get("output", ""),
             "applied": "; ".join(i.extra.get("applied", [])), "notes": "; ".join(i.extra.get("notes", [])),
             "seconds": round(i.seconds, 3), "error": i.error}) for i in items]
    with atomic_path(Path(out_dir) / "manifest.csv") as temp:
        pd.DataFrame(rows, columns=MANIFEST_CSV_COLUMNS).to_csv(temp, index=False)
