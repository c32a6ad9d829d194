"""``ctglip zeroshot``: CLI over :func:`stages.zeroshot.run`."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ctglip_cli.common import HU_CHECK_HELP, calm_openmp, console, fail_fast, finish, rich_progress
from stages.common.device import DEVICE_HELP

# CLI option -> ZeroshotConfig field, where the names differ (checked by the tests).
OPTION_FIELDS = {"output": "output_dir", "cache": "cache_dir", "val_fraction": "validation_fraction"}


def _interval(estimate: dict | None) -> str:
    if not estimate or estimate.get("value") is None:
        return "-"
    if estimate.get("ci_low") is None:
        return f"{estimate['value']:.3f}"
    return f"{estimate['value']:.3f} [{estimate['ci_low']:.3f}, {estimate['ci_high']:.3f}]"


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """The run's own warnings (unfinished checkpoint, HU check, ...) as yellow lines after the progress bar."""
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            console.print(f"[bold yellow]warning:[/] {warning.message}")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def print_metrics(metrics: dict) -> None:
    """Headline figures and per-abnormality metrics (95 % bootstrap intervals) as rich tables."""
    recognition = metrics.get("organ_recognition")
    if recognition:
        table = Table(title=f"organ recognition ({metrics.get('mode')} model)")
        for column, justify in (("organs", "left"), ("n", "right"), ("top-1", "right"), ("top-5", "right")):
            table.add_column(column, justify=justify)
        table.add_row("all", str(recognition["n"]),
                      *(_interval({"value": recognition[k], "ci_low": recognition[f"{k}_ci"][0],
                                   "ci_high": recognition[f"{k}_ci"][1]}) for k in ("top1", "top5")))
        complete = recognition["complete_only"]
        table.add_row("complete (not cut by the scan border)", str(complete["n"]),
                      *(_interval({"value": complete[k]}) for k in ("top1", "top5")))
        console.print(table)
    abnormality = metrics.get("abnormality")
    if abnormality:
        threshold = abnormality["threshold"]
        table = Table(title=f"abnormality detection (threshold: {threshold['method']}, "
                            f"{abnormality['n_scans']} scans)")
        names = ("auc", "f1", "sensitivity", "specificity", "precision")
        table.add_column("organ/abnormality")
        table.add_column("n+/n", justify="right")
        for name in names:
            table.add_column(name, justify="right")
        for key, values in abnormality["per_abnormality"].items():
            table.add_row(key, f"{values['n_positive']}/{values['n']}", *(_interval(values[n]) for n in names))
        table.add_row("[bold]macro", "", *(f"[bold]{_interval(abnormality['macro'][n])}" for n in names))
        console.print(table)
    scan_labels = metrics.get("scan_labels")
    if scan_labels:
        protocol = metrics.get("protocol", {}).get("name", "ctglip")
        table = Table(title=f"scan-level labels (protocol {protocol}, F1 {scan_labels['f1_kind']}, "
                            f"{scan_labels['n_scans']} scans)")
        names = ("auc", "f1", "sensitivity", "specificity", "precision", "accuracy")
        table.add_column("label")
        table.add_column("n+/n", justify="right")
        for name in names:
            table.add_column(name, justify="right")
        for label, values in scan_labels["per_label"].items():
            table.add_row(label, f"{values['n_positive']}/{values['n']}", *(_interval(values[n]) for n in names))
        for macro in ("macro", "macro_fvlm16"):
            summary = scan_labels[macro]
            table.add_row(f"[bold]{macro} ({summary['n_labels']} labels)", "",
                          *(f"[bold]{_interval(summary[n])}" for n in names))
        console.print(table)
        for label, reason in scan_labels["unscored"].items():
            console.print(f"[yellow]not scored:[/] {label}: {reason}")


def command(
    checkpoint: Annotated[Path, typer.Argument(help="A `ctglip pretrain` checkpoint (RUN_DIR/final.pt).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for predictions, metrics and plots.")],
    ct_dir: Annotated[Path | None, typer.Option(help="Folder of CT volumes (*.nii.gz / *.nii).")] = None,
    masks_dir: Annotated[Path | None, typer.Option(help="`ctglip segment` output for --ct-dir.")] = None,
    cache: Annotated[Path | None, typer.Option(help="A `ctglip cache` folder instead of --ct-dir/--masks-dir.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Reference labels: long CSV scan_id,organ,abnormality,present "
                                                "(as `ctglip synth` writes), or wide scan-level CSV VolumeName|scan_id "
                                                "+ one 0/1 column per finding (CT-RATE's): computes metrics.")] = None,
    label_map: Annotated[Path | None, typer.Option(help="JSON/YAML replacing the shipped label map (wide labels: "
                                                   "finding -> organ units and prompt phrase).")] = None,
    protocol: Annotated[str, typer.Option(help="Prompts and threshold rule: ctglip (default), ctclip or fvlm "
                                          "(as CT-CLIP's / fVLM's published evaluation).")] = "ctglip",
    abnormalities: Annotated[Path | None, typer.Option(help="JSON/YAML organ -> abnormalities to score "
                                                       "(default: the checkpoint's dictionary).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="JSON/YAML prompt templates replacing the defaults.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Fixed score threshold for F1 & co.")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Choose thresholds (best F1) on this share of "
                                                       "labelled scans; metrics on the rest.")] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples for the 95 % intervals.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the validation split.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Organ crops per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = "auto",
    text_encoder: Annotated[Path | None, typer.Option(help="Local copy of the checkpoint's text encoder, "
                                                      "where its recorded path is gone.")] = None,
    save_embeddings: Annotated[bool, typer.Option(help="Also write embeddings.npy + embeddings_index.parquet.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier zeroshot run in --output.")] = False,
    hu_check: Annotated[str, typer.Option(help=HU_CHECK_HELP)] = "error",
) -> None:
    """Zero-shot organ recognition and abnormality detection with text prompts."""
    calm_openmp()
    from stages.zeroshot import ZeroshotConfig, run
    from stages.zeroshot.io import METRICS_FILE, read_metrics

    config = fail_fast(lambda: ZeroshotConfig(
        checkpoint=checkpoint, output_dir=output, ct_dir=ct_dir, masks_dir=masks_dir, cache_dir=cache,
        labels=labels, label_map=label_map, protocol=protocol, abnormalities=abnormalities, prompts=prompts,
        threshold=threshold, validation_fraction=val_fraction, resamples=resamples, seed=seed, batch_size=batch_size, device=device,
        text_encoder=text_encoder, save_embeddings=save_embeddings, overwrite=overwrite, hu_check=hu_check))
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("default")
            try:
                with rich_progress() as progress:
                    result = fail_fast(lambda: run(config, progress))
            finally:
                caught = list(recorded)
    finally:
        _show_warnings(caught)  # outside the recording context, so re-emitted warnings are not recorded again
    print_metrics(read_metrics(result.output_dir / METRICS_FILE))
    finish(result)
