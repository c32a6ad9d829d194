"""``ctglip organs``: print the anatomy table."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from stages.common.anatomy import ANATOMY_TABLE_VERSION, TOTALSEG_TASK, anatomy_rows


def command() -> None:
    """Print the anatomy table: TotalSegmentator id, class, organ unit, group, report synonyms."""
    table = Table(title=f"ctglip anatomy table v{ANATOMY_TABLE_VERSION} (TotalSegmentator task '{TOTALSEG_TASK}')")
    for column in ("label_id", "class_name", "organ_unit", "group", "synonyms"):
        table.add_column(column, overflow="fold")
    for row in anatomy_rows():
        table.add_row(*(str(row[key]) for key in ("label_id", "class_name", "organ_unit", "group", "synonyms")))
    Console().print(table)
