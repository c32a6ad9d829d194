"""Typed config of ``ctglip segment``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.common.device import check_device_name
from stages.common.errors import SetupError
from stages.common.hu_check import HU_CHECK_MODES
from stages.common.shards import check_shard

ENGINES = ("totalsegmentator", "import")


@dataclass(frozen=True)
class SegmentConfig:
    """What ``ctglip segment`` does; every CLI option maps to one field.

    ``shard`` is ``(k, n)`` with ``1 <= k <= n``: this process takes every n-th scan
    (sorted by name) starting at the k-th, so n processes can share one folder.
    """

    ct_dir: Path
    out_dir: Path
    engine: str = "totalsegmentator"
    import_from: Path | None = None
    fast: bool = False
    device: str = "auto"
    shard: tuple[int, int] = (1, 1)
    overwrite: bool = False
    affine_tolerance_mm: float = 1e-3
    hu_check: str = "error"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise SetupError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.engine == "import" and self.import_from is None:
            raise SetupError("--engine import needs --from SRC (a folder of existing segmentations)")
        check_device_name(self.device)
        if self.hu_check not in HU_CHECK_MODES:
            raise SetupError(f"--hu-check must be one of {', '.join(HU_CHECK_MODES)}, got {self.hu_check!r}")
        check_shard(self.shard)

