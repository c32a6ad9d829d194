"""The run folder's readable files: ``config.json``, ``metrics.csv``, ``loss.png`` (checkpoints: checkpoint.py).

All writes are atomic (temp file + rename).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from stages.common.atomic import atomic_path, write_json_atomic, write_text_atomic

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"
PLOT_NAME = "loss.png"
METRIC_COLUMNS = ("kind", "step", "epoch", "loss", "organ_text", "abnormality", "organ_name", "lr",
                  "logit_scale", "samples_per_s", "data_wait", "recall_at_1", "recall_at_5", "chance_at_1",
                  "val_samples", "val_texts")


def write_config_json(run_dir: Path, config: dict[str, Any]) -> None:
    write_json_atomic(run_dir / CONFIG_NAME, config)


def write_metrics_csv(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """All metric rows so far (train rows every few steps, one val row per epoch)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _format_value(row.get(key)) for key in METRIC_COLUMNS})
    write_text_atomic(run_dir / METRICS_NAME, buffer.getvalue())


def read_metrics_csv(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.csv`` with numbers parsed (empty cells are None)."""
    with open(run_dir / METRICS_NAME, newline="", encoding="utf-8") as handle:
        return [{key: _parse_value(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _parse_value(text: str) -> Any:
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def plot_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``loss.png``: training loss terms by step, validation recall@1/5 (and chance) by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    train = [row for row in rows if row["kind"] == "train"]
    val = [row for row in rows if row["kind"] == "val"]
    figure, (loss_axes, recall_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "organ_text", "abnormality", "organ_name"):
        points = [(row["step"], row[key]) for row in train if row.get(key) is not None and math.isfinite(row[key])]
        if points and any(value for _, value in points):
            loss_axes.plot(*zip(*points), label=key, linewidth=2 if key == "loss" else 1)
    loss_axes.set(xlabel="step", ylabel="loss", title="training loss")
    for key in ("recall_at_1", "recall_at_5", "chance_at_1"):
        points = [(row["epoch"], row[key]) for row in val if row.get(key) is not None]
        if points:
            recall_axes.plot(*zip(*points), marker="o", label=key, linestyle="--" if key == "chance_at_1" else "-")
    recall_axes.set(xlabel="epoch", ylabel="recall", ylim=(0, 1), title="validation organ -> text retrieval")
    for axes in (loss_axes, recall_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    figure.tight_layout()
    target = run_dir / PLOT_NAME
    with atomic_path(target) as temp:
        figure.savefig(temp, dpi=100)
    plt.close(figure)
    return target
