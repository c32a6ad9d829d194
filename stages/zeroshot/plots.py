"""PNG figures of a zero-shot run: organ confusion matrix, per-finding AUC forest plots (one run,
or several side by side) and ROC curves as small multiples."""
from __future__ import annotations

from pathlib import Path

import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stages.common.atomic import atomic_path
from stages.zeroshot.evaluate import pair_key
from stages.zeroshot.metrics import roc_curve

CONFUSION_PLOT = "confusion_organs.png"
ROC_PLOT = "roc_abnormalities.png"
FOREST_PLOT = "auc_abnormalities.png"
ROC_SCAN_PLOT = "roc_scan_labels.png"
FOREST_SCAN_PLOT = "auc_scan_labels.png"


def _new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, without pyplot's global state."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, target: Path) -> Path:
    with atomic_path(target) as temp:
        figure.savefig(temp, format="png", dpi=110, bbox_inches="tight")
    return target


def confusion_matrix(recognition: pd.DataFrame, vocabulary: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Counts [true organ, predicted organ]; rows are the organs that occurred, columns the vocabulary."""
    true_organs = sorted(recognition["organ"].unique())
    column = {organ: j for j, organ in enumerate(vocabulary)}
    row = {organ: i for i, organ in enumerate(true_organs)}
    counts = np.zeros((len(true_organs), len(vocabulary)), dtype=np.int64)
    for true, predicted in zip(recognition["organ"], recognition["predicted_organ"]):
        counts[row[true], column[predicted]] += 1
    return counts, true_organs, list(vocabulary)


def plot_confusion_organs(recognition: pd.DataFrame, vocabulary: list[str], target: Path) -> Path:
    """Row-normalised confusion matrix of organ recognition (true organ vs top-1 prediction)."""
    counts, rows, columns = confusion_matrix(recognition, vocabulary)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    figure = _new_figure(max(4.0, 0.25 * len(columns) + 3.0), max(3.5, 0.25 * len(rows) + 2.5))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    axes.set_yticks(range(len(rows)), rows, fontsize=7)
    axes.set_xlabel("predicted organ (top-1)")
    axes.set_ylabel("true organ (from the mask)")
    correct = sum(counts[i, columns.index(organ)] for i, organ in enumerate(rows) if organ in columns)
    accuracy = correct / max(int(counts.sum()), 1)
    axes.set_title(f"Zero-shot organ recognition (top-1 {accuracy:.3f}, n={int(counts.sum())})")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true organ")
    return _save(figure, target)


def _label_of(key: tuple) -> str:
    return pair_key(*key) if len(key) == 2 else str(key[0])


def plot_roc_grid(evaluated: pd.DataFrame, key_columns: list[str], per_key: dict, target: Path,
                  title: str) -> Path:
    """ROC curves as small multiples, one panel per finding, each with its AUC, n+/n and the
    chosen threshold (dot): nineteen curves in one panel cannot be told apart."""
    groups = [(key if isinstance(key, tuple) else (key,), rows)
              for key, rows in evaluated.groupby(key_columns, sort=True)]
    columns = min(5, max(1, len(groups)))
    rows_count = max(1, -(-len(groups) // columns))
    figure = _new_figure(2.3 * columns, 2.45 * rows_count + 0.5)
    axes_grid = figure.subplots(rows_count, columns, squeeze=False, sharex=True, sharey=True)
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(groups):
            axes.set_visible(False)
            continue
        key, rows = groups[index]
        name = _label_of(key)
        present = rows["present"].to_numpy(bool)
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.7)
        area = per_key.get(name, {}).get("auc", {}).get("value")
        if present.any() and not present.all():
            fpr, tpr, _ = roc_curve(present, rows["score"].to_numpy())
            axes.plot(np.r_[0.0, fpr], np.r_[0.0, tpr], color="tab:blue", linewidth=1.4)
            sensitivity = per_key.get(name, {}).get("sensitivity", {}).get("value")
            specificity = per_key.get(name, {}).get("specificity", {}).get("value")
            if sensitivity is not None and specificity is not None:  # the operating point metrics.json reports
                axes.scatter([1.0 - specificity], [sensitivity], color="tab:red", s=16, zorder=3)
        heading = textwrap.fill(name, 28)
        axes.set_title(f"{heading}\nAUC {area:.2f}" if area is not None else f"{heading}\nAUC undefined",
                       fontsize=8)
        axes.text(0.97, 0.04, f"{int(present.sum())}+ / {len(present)}", fontsize=7, ha="right",
                  transform=axes.transAxes)
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        axes.tick_params(labelsize=7)
    for axes in axes_grid[-1]:
        axes.set_xlabel("1 - specificity", fontsize=8)
    for axes in axes_grid[:, 0]:
        axes.set_ylabel("sensitivity", fontsize=8)
    figure.suptitle(f"{title} (red dot: chosen threshold)", fontsize=10)
    figure.tight_layout()
    return _save(figure, target)


def plot_roc_abnormalities(evaluated: pd.DataFrame, per_abnormality: dict, target: Path) -> Path:
    """Organ-level ROC curves, one small panel per (organ, abnormality)."""
    return plot_roc_grid(evaluated, ["organ", "abnormality"], per_abnormality, target,
                         "Zero-shot abnormality detection per organ")


def plot_roc_scan_labels(evaluated: pd.DataFrame, per_label: dict, target: Path) -> Path:
    """Scan-level ROC curves, one small panel per label."""
    return plot_roc_grid(evaluated, ["label"], per_label, target, "Zero-shot scan-level labels")


@dataclass(frozen=True)
class ForestSeries:
    """One run's per-finding AUCs (``{finding: {value, ci_low, ci_high}}``) and its macro AUC."""

    name: str
    per_finding: dict[str, dict]
    macro: dict


def forest_series(metrics: dict, name: str, section: str | None = None) -> ForestSeries:
    """The AUCs of a metrics.json: its ``scan_labels`` (when present) or ``abnormality`` section."""
    section = section or ("scan_labels" if "scan_labels" in metrics else "abnormality")
    if section not in metrics:
        raise ValueError(f"metrics of {name!r} have no {section!r} section (run zeroshot with --labels)")
    values = metrics[section]
    per = values["per_label"] if section == "scan_labels" else values["per_abnormality"]
    return ForestSeries(name, {key: entry["auc"] for key, entry in per.items()}, values["macro"]["auc"])


def plot_forest(series: list[ForestSeries], target: Path, title: str = "Zero-shot AUC per finding") -> Path:
    """Per-finding AUC with 95 % intervals, one row per finding (runs side by side), macro at the
    bottom; sorted by the first run's AUC so the weak findings sit together."""
    first = series[0].per_finding
    findings = sorted(set().union(*(s.per_finding for s in series)),
                      key=lambda k: (-(first.get(k, {}).get("value") or -1.0), k))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    offsets = np.linspace(0.18, -0.18, len(series)) if len(series) > 1 else np.zeros(1)
    figure = _new_figure(8.0, 0.34 * (len(findings) + 1) * max(1.0, 0.6 * len(series)) + 1.3)
    axes = figure.add_subplot()
    positions = {finding: len(findings) - i for i, finding in enumerate(findings)}
    for run, colour, offset in zip(series, colours, offsets):
        entries = [(positions[k], run.per_finding.get(k, {})) for k in findings] + [(0, run.macro)]
        for y, estimate in entries:
            value, low, high = estimate.get("value"), estimate.get("ci_low"), estimate.get("ci_high")
            if value is None:
                axes.text(1.04, y + offset, "undefined", color=colour, fontsize=7, va="center",
                          transform=axes.get_yaxis_transform())
                continue
            if low is not None and high is not None:
                axes.plot([low, high], [y + offset] * 2, color=colour, linewidth=1.6)
            axes.scatter([value], [y + offset], color=colour, zorder=3, s=46 if y == 0 else 22,
                         marker="D" if y == 0 else "o")
            interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
            axes.text(1.04, y + offset, f"{value:.2f}{interval}", color=colour, fontsize=7, va="center",
                      transform=axes.get_yaxis_transform())
        macro = run.macro["value"]
        axes.scatter([], [], color=colour, label=f"{run.name} (macro {macro:.3f})" if macro is not None else run.name)
    axes.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    axes.axhline(0.5, color="lightgrey", linewidth=0.8)
    axes.set_yticks([0, *positions.values()], ["macro", *positions.keys()], fontsize=8)
    axes.get_yticklabels()[0].set_fontweight("bold")
    axes.set_xlim(0, 1.01)
    axes.set_ylim(-0.7, len(findings) + 0.7)
    axes.set_xlabel("AUC with 95 % scan-level bootstrap interval (dashed: chance)")
    axes.grid(axis="x", color="0.92")
    axes.set_title(title)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=len(series), frameon=False)
    return _save(figure, target)
