"""``ctglip pretrain``: CLI over :func:`stages.pretrain.run` (single process or under torchrun)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctglip_cli.common import calm_openmp, console, fail_fast, finish, rich_progress
from stages.common.device import DEVICE_HELP
from stages.common.errors import SetupError


def command(
    cache_dir: Annotated[Path, typer.Argument(help="Output folder of `ctglip cache`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run folder for checkpoints and metrics.")],
    mode: Annotated[str, typer.Option(help="grounded (organ crops vs organ texts, CT-GLIP) or global "
                                           "(whole volume vs whole report, the vanilla-CLIP baseline).")] = "grounded",
    config: Annotated[str, typer.Option("--config", help="Preset size (tiny: CPUs, base: GPUs) or a JSON "
                                                         "file with \"model\" and \"train\".")] = "tiny",
    encoder: Annotated[str | None, typer.Option(help="cnn (nnU-Net) or vit; picks the preset family "
                                                      "(default cnn, or the JSON file's).")] = None,
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP} (under torchrun: GPU LOCAL_RANK).")] = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: one per core; use fewer on a "
                                                     "machine shared with other busy processes).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the training samples.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Global batch size (split across processes); "
                                                        "the contrastive negatives.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak AdamW learning rate (warmup, then cosine).")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Fraction of scans held out for validation.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for weights, split, batch order, augmentation.")] = None,
    abnormality_weight: Annotated[float | None, typer.Option(help="Weight of the abnormality-dictionary "
                                                                  "term (grounded mode).")] = None,
    organ_name_weight: Annotated[float | None, typer.Option(help="Weight of the organ-name prompt term "
                                                                 "(0 = off, the default).")] = None,
    include_incomplete: Annotated[bool | None, typer.Option("--include-incomplete/--skip-incomplete",
                                                            help="Train on organs cut by the scan border "
                                                                 "(the default: a chest CT cuts the liver, an "
                                                                 "abdominal CT the lungs).")] = None,
    oversample_abnormal: Annotated[int | None, typer.Option(help="Show abnormal samples N times per "
                                                                 "epoch.")] = None,
    jitter_hu: Annotated[float | None, typer.Option(help="Augmentation: random brightness change of up to "
                                                        "+-N HU (keep it near scanner variation).")] = None,
    shift_voxels: Annotated[int | None, typer.Option(help="Augmentation: move each training crop and its "
                                                          "mask by up to N voxels per axis (0 = off).")] = None,
    flip_axes: Annotated[str | None, typer.Option(help="Augmentation: comma-separated volume axes (0,1,2) "
                                                       "flipped at random; empty = none.")] = None,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16.")] = None,
    compile_model: Annotated[bool | None, typer.Option("--compile/--no-compile",
                                                       help="torch.compile the model (GPU).")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Write last.pt every N steps.")] = None,
    stop_after_steps: Annotated[int | None, typer.Option(help="Stop (as if killed) after N steps; "
                                                              "continue later with --resume.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in -o from its last.pt.")] = False,
) -> None:
    """Pretrain CT-GLIP on a cache; writes RUN_DIR/{last,final}.pt, metrics.csv, loss.png."""
    calm_openmp()
    from stages.pretrain import make_config, run
    from stages.pretrain.distributed import world_info_from_env

    def parse_axes(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise SetupError(f"--flip-axes: expected comma-separated axes such as 0,2, got {text!r}") from None

    def build():
        return make_config(
            cache_dir, output, mode=mode, preset=config, encoder=encoder, device=device, threads=threads,
            resume=resume, stop_after_steps=stop_after_steps, epochs=epochs, batch_size=batch_size, lr=lr,
            val_fraction=val_fraction, seed=seed, abnormality_weight=abnormality_weight,
            organ_name_weight=organ_name_weight, include_incomplete=include_incomplete,
            oversample_abnormal=oversample_abnormal, jitter_hu=jitter_hu, shift_voxels=shift_voxels,
            flip_axes=None if flip_axes is None else parse_axes(flip_axes), num_workers=num_workers,
            precision=precision, compile=compile_model, checkpoint_every=checkpoint_every)

    pretrain_config = fail_fast(build)
    is_main = fail_fast(world_info_from_env).is_main
    with rich_progress() as progress:
        result = fail_fast(lambda: run(pretrain_config, progress))
    if not is_main:
        raise typer.Exit(result.exit_code)
    if result.final_metrics:
        summary = "  ".join(f"{key}={value:.4g}" for key, value in result.final_metrics.items())
        console.print(f"validation: {summary}")
    if not result.completed:
        console.print(f"stopped at step {stop_after_steps}; continue with --resume")
    finish(result)
