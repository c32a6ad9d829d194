"""``ctglip segment``: CLI over :func:`stages.segment.run`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctglip_cli.common import HU_CHECK_HELP, fail_fast, finish, rich_progress
from stages.common.device import DEVICE_HELP


def command(
    ct_dir: Annotated[Path, typer.Argument(help="Folder of CT volumes (*.nii.gz / *.nii).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for <scan_id>.nii.gz masks.")],
    engine: Annotated[str, typer.Option(help="totalsegmentator (run it) or import (existing masks).")] = "totalsegmentator",
    source: Annotated[Path | None, typer.Option("--from", help="With --engine import: folder of "
                      "<scan_id>.nii.gz multilabel masks or <scan_id>/<class>.nii.gz folders.")] = None,
    fast: Annotated[bool, typer.Option(help="TotalSegmentator's 3 mm fast model.")] = False,
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = "auto",
    shard: Annotated[str, typer.Option(help="K/N: process every N-th scan starting at the K-th.")] = "1/1",
    overwrite: Annotated[bool, typer.Option(help="Redo scans already segmented.")] = False,
    hu_check: Annotated[str, typer.Option(help=HU_CHECK_HELP)] = "error",
) -> None:
    """Segment CTs into TotalSegmentator 'total' organ masks (or import existing ones)."""
    from stages.segment import SegmentConfig, parse_shard, run

    config = fail_fast(lambda: SegmentConfig(ct_dir=ct_dir, out_dir=output, engine=engine, import_from=source,
                                             fast=fast, device=device, shard=parse_shard(shard),
                                             overwrite=overwrite, hu_check=hu_check))
    with rich_progress() as progress:
        result = fail_fast(lambda: run(config, progress))
    finish(result)
