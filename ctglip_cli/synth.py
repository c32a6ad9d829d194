"""``ctglip synth``: CLI over :func:`stages.synth.run`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctglip_cli.common import fail_fast, finish, rich_progress


def command(
    output: Annotated[Path, typer.Option("-o", "--output", help="New folder for ct/, masks/, reports.csv, labels.csv.")],
    n_scans: Annotated[int, typer.Option("--n-scans", help="Number of scans to generate.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed; scan ids are synth_s<seed>_<index>.")] = 0,
    shape: Annotated[str, typer.Option(help="Voxels per axis, X,Y,Z.")] = "96,96,96",
    spacing: Annotated[str, typer.Option(help="Voxel size in mm, X,Y,Z (anisotropic allowed).")] = "3,3,3",
    prevalence: Annotated[float, typer.Option(help="Probability that an organ is abnormal.")] = 0.25,
    omit_fraction: Annotated[float, typer.Option("--omit-fraction",
                                                 help="Probability that a report misses a true finding.")] = 0.1,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier synth dataset in the folder.")] = False,
    preview: Annotated[bool, typer.Option(help="Write examples.png and prevalence.png.")] = True,
    layout: Annotated[str, typer.Option(help="ctglip, or ctrate: also dataset/ shaped like CT-RATE (nested "
                                        "VolumeName folders of stored values, reports, wide labels, metadata CSVs); "
                                        "scan ids become train_<n>_a_1.")] = "ctglip",
) -> None:
    """Generate a synthetic CT + report benchmark with known ground truth."""
    from stages.synth import SynthConfig, run
    from stages.synth.config import parse_triple

    config = fail_fast(lambda: SynthConfig(
        out_dir=output, n_scans=n_scans, seed=seed, shape=parse_triple(shape, "--shape", int),
        spacing=parse_triple(spacing, "--spacing", float), prevalence=prevalence, omit_fraction=omit_fraction,
        workers=workers, overwrite=overwrite, preview=preview, layout=layout))
    with rich_progress() as progress:
        result = fail_fast(lambda: run(config, progress))
    finish(result)
