"""PNG figures of a zero-shot run: organ confusion matrix and abnormality ROC curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stages.common.atomic import atomic_path
from stages.zeroshot.evaluate import pair_key
from stages.zeroshot.metrics import roc_curve

CONFUSION_PLOT = "confusion_organs.png"
ROC_PLOT = "roc_abnormalities.png"


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


def plot_roc_abnormalities(evaluated: pd.DataFrame, per_abnormality: dict, target: Path) -> Path:
    """ROC curve per (organ, abnormality) with its AUC and the chosen threshold marked."""
    figure = _new_figure(7.5, 6.0)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    colours = matplotlib.colormaps["tab20"]
    for index, ((organ, abnormality), rows) in enumerate(evaluated.groupby(["organ", "abnormality"], sort=True)):
        present = rows["present"].to_numpy(bool)
        if present.all() or not present.any():
            continue
        fpr, tpr, _ = roc_curve(present, rows["score"].to_numpy())
        key = pair_key(organ, abnormality)
        area = per_abnormality.get(key, {}).get("auc", {}).get("value")
        colour = colours((2 * index) % 20 + (index // 10) % 2)  # dark shades first, then light
        axes.plot(np.r_[0.0, fpr], np.r_[0.0, tpr], color=colour, linewidth=1.2,
                  label=f"{key} (AUC {area:.3f})" if area is not None else key)
        predicted = rows["score"].to_numpy() >= rows["threshold"].iloc[0]
        axes.scatter([(predicted & ~present).sum() / (~present).sum()], [(predicted & present).sum() / present.sum()],
                     color=colour, s=18, zorder=3)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("1 - specificity (false-positive rate)")
    axes.set_ylabel("sensitivity (true-positive rate)")
    axes.set_title("Zero-shot abnormality detection (dots: chosen thresholds)")
    axes.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(figure, target)
