"""Reference labels for abnormality detection: ``labels.csv`` (written by ``ctglip synth``,
or by users for their own test sets; read by ``ctglip zeroshot --labels``), and the plain
string-CSV reader it shares with synth's ``reports.csv``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.errors import InputError

LABEL_COLUMNS = ["scan_id", "organ", "abnormality", "present"]
_TRUE = {"1", "true", "yes", "y", "t", "1.0"}
_FALSE = {"0", "false", "no", "n", "f", "0.0"}


class LabelsError(InputError):
    """A labels file that cannot be used; the message names the file."""


def read_text_csv(path: Path, columns: list[str] | tuple[str, ...], kind: str,
                  error: type[Exception] = ValueError) -> pd.DataFrame:
    """``columns`` of a CSV read as strings (empty cells stay ""); ``error`` names the file and the problem."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as problem:
        raise error(f"{path}: cannot read {kind} ({problem})") from problem
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise error(f"{path}: {kind} needs columns {list(columns)}; missing {missing}")
    return table[list(columns)].copy()


def read_labels(path: Path) -> pd.DataFrame:
    """Long-format labels (``scan_id, organ, abnormality, present``), ``present`` as bool."""
    path = Path(path)
    table = read_text_csv(path, LABEL_COLUMNS, "labels CSV", LabelsError)
    for column in ("scan_id", "organ", "abnormality"):
        table[column] = table[column].str.strip()
    flags = table["present"].str.strip().str.lower()
    bad = ~flags.isin(_TRUE | _FALSE)
    if bad.any():
        line = int(np.argmax(bad.to_numpy())) + 2
        raise LabelsError(f"{path}: line {line}: 'present' must be 0/1 or true/false, "
                          f"got {table['present'].iloc[line - 2]!r}")
    table["present"] = flags.isin(_TRUE)
    duplicated = table.duplicated(["scan_id", "organ", "abnormality"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise LabelsError(f"{path}: label ({row.scan_id}, {row.organ}, {row.abnormality}) given twice")
    return table.reset_index(drop=True)
