"""Typed config of ``ctglip ingest``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.common.errors import SetupError
from stages.common.hu_check import HU_CHECK_MODES


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
        k, n = self.shard
        if not (1 <= k <= n):
            raise SetupError(f"shard {k}/{n} is invalid: use K/N with 1 <= K <= N")
        if n > 1 and self.overwrite:
            raise SetupError("--overwrite cannot be combined with --shard (shards would replace each other's "
                             "work): redo the folder with one process, or delete it first")
        if not Path(self.src).exists():
            raise SetupError(f"{self.src}: source folder or list file does not exist")
        if self.metadata is not None and not Path(self.metadata).is_file():
            raise SetupError(f"{self.metadata}: metadata CSV does not exist")
