"""Typed config of ``ctglip parse-reports``; every CLI option maps to one field."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.common.errors import SetupError


@dataclass(frozen=True)
class ParseReportsConfig:
    """Where the reports are, which columns hold them, and how to run.

    Column names left as None are detected: CT-RATE's ``VolumeName``/``Findings_EN``/``Impressions_EN``,
    else ``scan_id`` with ``findings``/``impression`` or one ``report`` column. ``lexicon_dir`` points at
    a copy of the lexicon folder to use instead of the packaged one. ``encoding``: of a CSV/TSV/JSON reports
    file. ``overwrite``: replace an earlier ``parse-reports`` output in ``out_dir`` (else refused).
    """

    reports: Path
    out_dir: Path
    id_column: str | None = None
    findings_column: str | None = None
    impression_column: str | None = None
    text_column: str | None = None
    merge_duplicates: bool = False
    workers: int = 1
    lexicon_dir: Path | None = None
    encoding: str = "utf-8"
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "reports", Path(self.reports))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.lexicon_dir is not None:
            object.__setattr__(self, "lexicon_dir", Path(self.lexicon_dir))
        if self.workers < 1:
            raise SetupError(f"--workers must be at least 1, got {self.workers}")
        if self.text_column and (self.findings_column or self.impression_column):
            raise SetupError("--text-column cannot be combined with --findings-column/--impression-column")
