"""Typed config of ``ctglip ingest``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.common.errors import SetupError
from stages.common.hu_check import HU_CHECK_MODES
from stages.common.shards import check_shard


@dataclass(frozen=True)
class IngestConfig:
    """What ``ctglip ingest`` does; every CLI option maps to one field.

    ``src`` is a folder (searched recursively for NIfTI files and DICOM series) or a
    ``.txt``/``.csv`` file listing paths. ``shard`` is ``(k, n)`` as in ``ctglip segment``.
    """

    src: Path
    out_dir: Path
    metadata: Path | None = None
    shard: tuple[int, int] = (1, 1)
    workers: int = 1
    overwrite: bool = False
    hu_check: str = "error"

    def __post_init__(self) -> None:
        if self.hu_check not in HU_CHECK_MODES:
            raise SetupError(f"--hu-check must be one of {', '.join(HU_CHECK_MODES)}, got {self.hu_check!r}")
        if self.workers < 1:
            raise SetupError(f"--workers must be at least 1, got {self.workers}")
        check_shard(self.shard, self.overwrite)
        if not Path(self.src).exists():
            raise SetupError(f"{self.src}: source folder or list file does not exist")
        if self.metadata is not None and not Path(self.metadata).is_file():
            raise SetupError(f"{self.metadata}: metadata CSV does not exist")
