"""CSV cells that a spreadsheet opens as text, never as a formula.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and
some treat a leading tab or carriage return the same way), so a report sentence such as ``=SUM(A1)`` or
``@cmd`` would run when a user opens ``unassigned_sentences.csv``. OWASP's advice: prefix such a cell
with a single quote, which spreadsheets show as text and drop from the display.
"""
from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is a string a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_row(row: dict[str, Any]) -> dict[str, Any]:
    """Every cell of a CSV row made safe (see :func:`spreadsheet_safe`)."""
    return {key: spreadsheet_safe(value) for key, value in row.items()}
