"""``ctglip ingest``: CLI over :func:`stages.ingest.run`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctglip_cli.common import HU_CHECK_HELP, fail_fast, finish, rich_progress


def command(
    src: Annotated[Path, typer.Argument(help="Folder searched recursively for NIfTI files and DICOM series, "
                                        "or a .txt/.csv file listing paths.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CT_DIR: <scan_id>.nii.gz in HU + manifest.")],
    metadata: Annotated[Path | None, typer.Option(help="CT-RATE style *_metadata.csv (VolumeName, RescaleSlope, "
                                                  "RescaleIntercept, XYSpacing, ZSpacing): applied only where "
                                                  "the HU check or the header's spacing says it is needed.")] = None,
    shard: Annotated[str, typer.Option(help="K/N: process every N-th scan starting at the K-th.")] = "1/1",
    workers: Annotated[int, typer.Option(help="Scans converted in parallel.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Redo every scan: the earlier folder is moved aside and deleted "
                                            "once this run ends (not with --shard).")] = False,
    hu_check: Annotated[str, typer.Option(help=HU_CHECK_HELP)] = "error",
) -> None:
    """Turn NIfTI files and DICOM series (nested folders, CT-RATE) into one folder of HU NIfTI files."""
    from stages.ingest import IngestConfig, run
    from stages.common.shards import parse_shard

    config = fail_fast(lambda: IngestConfig(src=src, out_dir=output, metadata=metadata, shard=parse_shard(shard),
                                            workers=workers, overwrite=overwrite, hu_check=hu_check))
    with rich_progress() as progress:
        result = fail_fast(lambda: run(config, progress))
    finish(result)
