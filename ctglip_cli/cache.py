"""``ctglip cache``: CLI over :func:`stages.cache.run`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctglip_cli.common import HU_CHECK_HELP, calm_openmp, console, fail_fast, finish, rich_progress
from stages.common.text_encoder import DEFAULT_ENCODER_ID


def command(
    ct_dir: Annotated[Path, typer.Option("--ct-dir", help="Folder of CT volumes (*.nii.gz / *.nii).")],
    masks_dir: Annotated[Path, typer.Option("--masks-dir", help="Output folder of `ctglip segment`.")],
    reports_dir: Annotated[Path, typer.Option("--reports-dir", help="Output folder of `ctglip parse-reports`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Cache folder to create or resume.")],
    spacing: Annotated[tuple[float, float, float], typer.Option(help="Voxel size in mm (RAS x y z).")] = (1.5, 1.5, 1.5),
    window: Annotated[tuple[float, float] | None, typer.Option(help="HU window LO HI, scaled to [0, 1] "
                                                               "(default -1150 350, as fVLM).")] = None,
    window_preset: Annotated[str | None, typer.Option(help="Named window instead: fvlm, abdomen, lung, "
                                                      "mediastinum, ctclip.")] = None,
    crop_size: Annotated[int, typer.Option(help="Organ crop edge in voxels (64 CPU; 96/128 GPU).")] = 64,
    margin_mm: Annotated[float, typer.Option(help="Context margin around the organ's bounding box.")] = 10.0,
    volume_size: Annotated[int, typer.Option(help="Whole-volume sample edge (global baseline).")] = 96,
    text_encoder: Annotated[str, typer.Option(help="Local sentence-transformers/HF model folder.")] = DEFAULT_ENCODER_ID,
    normal_template: Annotated[str | None, typer.Option(help="Text for organs the report does not mention "
                                                         "(default: '{Organ} shows no significant "
                                                         "abnormality.').")] = None,
    organ_text_template: Annotated[str | None, typer.Option(help="An organ's training text from its report "
                                                             "sentences {text} (default: '{Organ}: {text}'; "
                                                             "naming the unit keeps left and right apart).")] = None,
    image_dtype: Annotated[str, typer.Option(help="uint8 (compact) or float16.")] = "uint8",
    volume: Annotated[bool, typer.Option(help="Also store whole-volume samples for --mode global.")] = True,
    global_text: Annotated[str, typer.Option(help="Whole-volume text for --mode global: organ_sentences (the "
                                                  "report's organ sentences), impression or findings_impression "
                                                  "(raw report columns).")] = "organ_sentences",
    reports_table: Annotated[Path | None, typer.Option(help="Raw reports table for --global-text impression|"
                                                            "findings_impression (default: the one parse-reports "
                                                            "read).")] = None,
    workers: Annotated[int, typer.Option(help="Scans processed in parallel (one scan in memory each).")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Rebuild scans already cached (or a cache of another config).")] = False,
    hu_check: Annotated[str, typer.Option(help=HU_CHECK_HELP)] = "error",
    shard: Annotated[str, typer.Option(help="K/N: build only every N-th scan's crops from the K-th (N machines "
                                       "share the folder); then rerun without --shard to write the index and "
                                       "text embeddings.")] = "1/1",
) -> None:
    """Turn scans, masks and parsed reports into organ crop / text samples for pretraining."""
    calm_openmp()
    from stages.cache import CacheConfig, PreprocessConfig, parse_window, run
    from stages.common.shards import parse_shard

    def build() -> CacheConfig:
        preprocess = PreprocessConfig(spacing=tuple(spacing), window=parse_window(window, window_preset),
                                      crop_size=(crop_size,) * 3, margin_mm=margin_mm, volume_size=(volume_size,) * 3)
        template = {key: value for key, value in (("normal_template", normal_template),
                                                  ("organ_text_template", organ_text_template)) if value is not None}
        return CacheConfig(ct_dir=ct_dir, masks_dir=masks_dir, reports_dir=reports_dir, out_dir=output,
                           preprocess=preprocess, text_encoder=text_encoder, image_dtype=image_dtype,
                           include_volume=volume, global_text=global_text, reports_table=reports_table,
                           workers=workers, overwrite=overwrite, hu_check=hu_check, shard=parse_shard(shard),
                           **template)

    config = fail_fast(build)
    with rich_progress() as progress:
        result = fail_fast(lambda: run(config, progress))
    if config.shard[1] > 1:
        console.print(f"shard {config.shard[0]}/{config.shard[1]}: crops written; once every shard is done, run the "
                      "same command without --shard to write the index and text embeddings")
    finish(result)
