"""Reference labels for abnormality detection: ``labels.csv`` (written by ``ctglip synth``,
or by users for their own test sets; read by ``ctglip zeroshot --labels``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LABEL_COLUMNS = ["scan_id", "organ", "abnormality", "present"]
_TRUE = {"1", "true", "yes", "y", "t", "1.0"}
_FALSE = {"0", "false", "no", "n", "f", "0.0"}


class LabelsError(ValueError):
    """A labels file that cannot be used; the message names the file."""


def read_labels(path: Path) -> pd.DataFrame:
    """Long-format labels (``scan_id, organ, abnormality, present``), ``present`` as bool."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise LabelsError(f"{path}: cannot read labels CSV ({error})") from error
    missing = [column for column in LABEL_COLUMNS if column not in table.columns]
    if missing:
        raise LabelsError(f"{path}: labels need columns {LABEL_COLUMNS}; missing {missing}")
    table = table[LABEL_COLUMNS].copy()
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
