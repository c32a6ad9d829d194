"""Every file ``ctglip parse-reports`` reads or writes.

Input: a reports table (CSV/TSV, parquet or JSONL) in CT-RATE layout (``VolumeName``, ``Findings_EN``,
``Impressions_EN``) or the generic one (``scan_id`` + ``findings``/``impression``, or one ``report``
column with FINDINGS:/IMPRESSION: headers inside).

Outputs in the output folder: ``organ_texts.parquet``, ``abnormality_dictionary.json``,
``unassigned_sentences.csv`` (plus ``manifest.json``, written by the stage). The ``cache`` stage reads
them through :func:`read_organ_texts` and :func:`read_abnormality_dictionary`.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stages.common.atomic import atomic_path, write_text_atomic
from stages.common.errors import InputError, SetupError
from stages.common.ids import NIFTI_SUFFIXES, InvalidScanId, validate_scan_id
from stages.common.manifest import read_manifest
from stages.common.spreadsheet import spreadsheet_row

STAGE = "parse-reports"
ORGAN_TEXTS = "organ_texts.parquet"
DICTIONARY = "abnormality_dictionary.json"
UNASSIGNED = "unassigned_sentences.csv"
PLOT = "abnormality_dictionary.png"
LIST_COLUMNS = ("abnormalities", "hedged_abnormalities", "negated_abnormalities")
ORGAN_TEXT_SCHEMA = pa.schema([
    ("scan_id", pa.string()), ("organ", pa.string()), ("text", pa.string()), ("abnormal", pa.bool_()),
    ("uncertain", pa.bool_()), *((name, pa.list_(pa.string())) for name in LIST_COLUMNS), ("grounded_by", pa.string()),
])
UNASSIGNED_COLUMNS = ("scan_id", "section", "sentence", "abnormalities")
ID_COLUMNS = ("VolumeName", "scan_id")
FINDINGS_COLUMNS = ("Findings_EN", "findings")
IMPRESSION_COLUMNS = ("Impressions_EN", "impression", "impressions")
TEXT_COLUMNS = ("report", "text", "report_text")


class ReportsInputError(InputError):
    """The reports table cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ReportColumns:
    """Which columns hold the id and the report text."""

    scan_id: str
    findings: str | None = None
    impression: str | None = None
    text: str | None = None


@dataclass
class ReportRecord:
    """One report to parse (texts are "" where the table had nothing)."""

    scan_id: str
    row: int
    findings: str = ""
    impression: str = ""
    text: str = ""

    @property
    def empty(self) -> bool:
        return not (self.findings.strip() or self.impression.strip() or self.text.strip())


def _readers(path: Path, encoding: str, errors: str) -> dict[str, Callable[[], pd.DataFrame]]:
    text = {"encoding": encoding, "encoding_errors": errors}
    return {
        ".csv": lambda: pd.read_csv(path, dtype=str, **text), ".csv.gz": lambda: pd.read_csv(path, dtype=str, **text),
        ".tsv": lambda: pd.read_csv(path, dtype=str, sep="\t", **text),
        ".tsv.gz": lambda: pd.read_csv(path, dtype=str, sep="\t", **text),
        ".parquet": lambda: pd.read_parquet(path), ".json": lambda: pd.read_json(path, dtype=False, **text),
        ".jsonl": lambda: pd.read_json(path, lines=True, dtype=False, **text),
        ".ndjson": lambda: pd.read_json(path, lines=True, dtype=False, **text),
        ".jsonl.gz": lambda: pd.read_json(path, lines=True, dtype=False, **text),
    }


def read_table(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """The reports table as strings (missing cells stay NaN); text files are decoded with ``encoding``."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: reports file not found")
    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise ReportsInputError(f"--encoding {encoding!r} is not a known text encoding (e.g. utf-8, cp1252, "
                                "latin-1)") from error
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    readers = _readers(path, encoding, "strict")
    if suffix not in readers:
        raise ReportsInputError(f"{path}: unknown table type {suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    try:
        table = readers[suffix]()
    except UnicodeDecodeError as error:
        raise ReportsInputError(_decode_problem(path, suffix, encoding, error)) from error
    except (OSError, ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError,
            pa.ArrowException) as error:  # (TypeError: JSON that is not a list of objects)
        where = _bad_json_line(path, encoding) if "jsonl" in suffix or "ndjson" in suffix else ""
        raise ReportsInputError(f"{path}: cannot read the reports table{where} ({type(error).__name__}: "
                                f"{error})") from error
    table.columns = [str(column) for column in table.columns]
    return table


def _bad_json_line(path: Path, encoding: str) -> str:
    """Where a JSON Lines file first breaks (pandas names a character position only): " (line N is not a JSON
    object)", or "" when every line is one."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding=encoding, errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                if isinstance(json.loads(line), dict):
                    continue
            except ValueError:
                pass
            return f": line {number} is not a JSON object"
    return ""


def _decode_problem(path: Path, suffix: str, encoding: str, error: UnicodeDecodeError) -> str:
    """Which data rows hold bytes that are not ``encoding`` text (rows counted from 1, as everywhere)."""
    byte = error.object[error.start:error.start + 1].hex() if isinstance(error.object, bytes) else "?"
    hint = (f"pass --encoding with the file's encoding (e.g. cp1252 or latin-1), or save it as {encoding}")
    try:
        table = _readers(path, encoding, "replace")[suffix]()
    except (OSError, ValueError, pd.errors.ParserError, pa.ArrowException):
        return f"{path}: not valid {encoding} text (byte 0x{byte}); {hint}"
    bad = [number for number, row in enumerate(table.astype(str).itertuples(index=False), 1)
           if any("\ufffd" in cell for cell in row)]
    if not bad:
        where = "the header line" if any("\ufffd" in str(column) for column in table.columns) else "the file"
        return f"{path}: {where} is not valid {encoding} text (byte 0x{byte}); {hint}"
    rows = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    verb = "rows {} are" if len(bad) > 1 else "row {} is"
    return f"{path}: {verb.format(rows)} not valid {encoding} text (byte 0x{byte}); {hint}"


def _find(table: pd.DataFrame, candidates: tuple[str, ...]) -> str | None:
    lower = {column.lower(): column for column in table.columns}
    for candidate in candidates:
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def resolve_columns(table: pd.DataFrame, path: Path, id_column: str | None = None, findings_column: str | None = None,
                    impression_column: str | None = None, text_column: str | None = None) -> ReportColumns:
    """Columns named by the user, else CT-RATE's, else the generic layout; clear errors otherwise."""
    existing = ", ".join(table.columns) or "(none)"
    for option, name in (("--id-column", id_column), ("--findings-column", findings_column),
                         ("--impression-column", impression_column), ("--text-column", text_column)):
        if name is not None and name not in table.columns:
            raise ReportsInputError(f"{path}: {option} {name!r} is not a column; the columns are: {existing}")
    scan_id = id_column or _find(table, ID_COLUMNS)
    if scan_id is None:
        raise ReportsInputError(f"{path}: no id column (expected one of {list(ID_COLUMNS)} or --id-column); "
                                f"the columns are: {existing}")
    if text_column:
        return ReportColumns(scan_id=scan_id, text=text_column)
    findings = findings_column or (None if impression_column else _find(table, FINDINGS_COLUMNS))
    impression = impression_column or (None if findings_column else _find(table, IMPRESSION_COLUMNS))
    if findings or impression:
        return ReportColumns(scan_id=scan_id, findings=findings, impression=impression)
    text = _find(table, TEXT_COLUMNS)
    if text is None:
        raise ReportsInputError(
            f"{path}: no report text columns (expected {list(FINDINGS_COLUMNS)} and/or {list(IMPRESSION_COLUMNS)}, "
            f"or one of {list(TEXT_COLUMNS)}; or pass --findings-column/--impression-column/--text-column); "
            f"the columns are: {existing}")
    return ReportColumns(scan_id=scan_id, text=text)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def normalise_scan_id(value: Any) -> str:
    """Scan id from a table cell: CT-RATE's volume file name loses its ``.nii.gz``; validated."""
    text = _cell(value).strip()
    for suffix in NIFTI_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return validate_scan_id(text)


def load_reports(path: Path, columns: ReportColumns, table: pd.DataFrame,
                 merge_duplicates: bool = False) -> tuple[list[ReportRecord], list[tuple[str, str]]]:
    """Records to parse, plus ``(row label, reason)`` for rows whose id is unusable."""
    records: dict[str, ReportRecord] = {}
    duplicates: dict[str, list[int]] = {}
    bad_ids: list[tuple[str, str]] = []
    for offset, row in enumerate(table.itertuples(index=False)):
        values = dict(zip(table.columns, row))
        number = offset + 1
        try:
            scan_id = normalise_scan_id(values[columns.scan_id])
        except InvalidScanId as error:
            bad_ids.append((f"row {number}", f"{path} row {number}: {error}"))
            continue
        record = ReportRecord(scan_id=scan_id, row=number,
                              findings=_cell(values[columns.findings]) if columns.findings else "",
                              impression=_cell(values[columns.impression]) if columns.impression else "",
                              text=_cell(values[columns.text]) if columns.text else "")
        if scan_id in records:
            duplicates.setdefault(scan_id, [records[scan_id].row]).append(number)
            if merge_duplicates:
                _merge(records[scan_id], record)
            continue
        records[scan_id] = record
    if duplicates and not merge_duplicates:
        listed = "; ".join(f"{scan_id} (rows {', '.join(map(str, rows))})"
                           for scan_id, rows in list(duplicates.items())[:10])
        more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        raise ReportsInputError(f"{path}: duplicate scan ids: {listed}{more}; pass --merge-duplicates to join "
                                "their reports")
    return list(records.values()), bad_ids


def _merge(kept: ReportRecord, extra: ReportRecord) -> None:
    """Join a duplicate's texts into the first record, skipping texts already there."""
    for name in ("findings", "impression", "text"):
        old, new = getattr(kept, name), getattr(extra, name)
        if new.strip() and new.strip() not in old:
            setattr(kept, name, f"{old}\n\n{new}" if old.strip() else new)


def write_organ_texts(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``organ_texts.parquet``: one row per (scan_id, organ) a report describes."""
    table = pa.Table.from_pylist([{name: row[name] for name in ORGAN_TEXT_SCHEMA.names} for row in rows],
                                 schema=ORGAN_TEXT_SCHEMA)
    path = Path(out_dir) / ORGAN_TEXTS
    with atomic_path(path) as temp:
        pq.write_table(table, temp)
    return path


def write_dictionary(out_dir: Path, dictionary: dict[str, dict[str, int]]) -> Path:
    """``abnormality_dictionary.json``: organ unit -> normalised phrase -> number of reports stating it."""
    path = Path(out_dir) / DICTIONARY
    write_text_atomic(path, json.dumps(dictionary, indent=2, ensure_ascii=False) + "\n")
    return path


def write_unassigned(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``unassigned_sentences.csv``: report sentences grounded to no organ unit, for review (opened in spreadsheets,
    so formula-like cells are escaped)."""
    path = Path(out_dir) / UNASSIGNED
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(UNASSIGNED_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(spreadsheet_row({**row, "abnormalities": "; ".join(row["abnormalities"])}) for row in rows)
    return path


def read_organ_texts(out_dir: Path) -> pd.DataFrame:
    """Organ texts of a ``ctglip parse-reports`` folder (manifest checked); list columns hold ``list[str]``."""
    out_dir = Path(out_dir)
    read_manifest(out_dir, STAGE)
    path = out_dir / ORGAN_TEXTS
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise ReportsInputError(f"{path}: cannot read organ texts ({error}); rerun `ctglip parse-reports`") from error
    missing = [name for name in ORGAN_TEXT_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ReportsInputError(f"{path}: missing columns {missing}; rerun `ctglip parse-reports`")
    frame = table.select(ORGAN_TEXT_SCHEMA.names).to_pandas()
    for name in LIST_COLUMNS:
        frame[name] = frame[name].map(lambda values: [str(v) for v in values] if values is not None else [])
    return frame


def read_abnormality_dictionary(out_dir: Path) -> dict[str, dict[str, int]]:
    """Organ unit -> phrase -> count from a ``ctglip parse-reports`` folder (manifest checked)."""
    out_dir = Path(out_dir)
    read_manifest(out_dir, STAGE)
    path = out_dir / DICTIONARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ReportsInputError(f"{path}: cannot read the abnormality dictionary ({error})") from error
    valid = isinstance(data, dict) and all(
        isinstance(phrases, dict) and all(isinstance(p, str) and isinstance(n, int) for p, n in phrases.items())
        for phrases in data.values())
    if not valid:
        raise ReportsInputError(f"{path}: expected {{organ: {{phrase: count}}}}")
    return data
