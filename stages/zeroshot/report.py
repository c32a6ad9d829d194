"""From predictions (+ labels) to ``metrics.json``, its PNGs and the headline figures."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from stages.zeroshot import io
from stages.zeroshot.evaluate import EvaluationConfig, abnormality_metrics, organ_recognition_metrics
from stages.zeroshot.reference import ReferenceLabels
from stages.zeroshot.scan_labels import scan_label_metrics
from stages.zeroshot.plots import (CONFUSION_PLOT, FOREST_PLOT, FOREST_SCAN_PLOT, ROC_PLOT, ROC_SCAN_PLOT,
                                   forest_series, plot_confusion_organs, plot_forest, plot_roc_abnormalities,
                                   plot_roc_scan_labels)


def write_metrics(output_dir: Path, evaluation: EvaluationConfig, predictions: pd.DataFrame,
                  labels: ReferenceLabels, vocabulary: list[str], header: dict) -> tuple[dict, list[str]]:
    """metrics.json plus the PNGs; returns the metrics and the files written."""
    written = []
    metrics = dict(header)
    recognition = predictions[predictions["task"] == "organ_recognition"]
    if len(recognition):
        metrics["organ_recognition"] = organ_recognition_metrics(predictions, evaluation)
        plot_confusion_organs(recognition, vocabulary, output_dir / CONFUSION_PLOT)
        written.append(CONFUSION_PLOT)
    if labels.organ_level is not None:
        section, evaluated = abnormality_metrics(predictions, labels.organ_level, evaluation)
        metrics["abnormality"] = section
        if evaluated.empty and len(predictions):
            warnings.warn(f"{labels.path}: no (scan, organ, abnormality) label matches a scored pair, so every "
                          "abnormality metric is null; score the labelled abnormalities with --abnormalities")
        if len(evaluated):
            plot_roc_abnormalities(evaluated, section["per_abnormality"], output_dir / ROC_PLOT)
            plot_forest([forest_series(metrics, header["mode"], "abnormality")], output_dir / FOREST_PLOT,
                        "Zero-shot AUC per organ and abnormality")
            written += [ROC_PLOT, FOREST_PLOT]
    if labels.scan_level is not None:
        section, evaluated = scan_label_metrics(predictions, labels.scan_level, labels.label_map, evaluation,
                                                labels.unscored)
        metrics["scan_labels"] = section
        if len(evaluated):
            plot_roc_scan_labels(evaluated, section["per_label"], output_dir / ROC_SCAN_PLOT)
            plot_forest([forest_series(metrics, header["mode"], "scan_labels")], output_dir / FOREST_SCAN_PLOT,
                        "Zero-shot AUC per scan-level label")
            written += [ROC_SCAN_PLOT, FOREST_SCAN_PLOT]
    io.write_metrics(output_dir / io.METRICS_FILE, metrics)
    return metrics, [io.METRICS_FILE, *written]


def headline(metrics: dict) -> dict[str, float | None]:
    """The headline figures (``organ_recognition.top1`` ..., scan-label macros when labelled); None where
    not computed."""
    figures = {f"{section}.{key}": metrics.get(section, {}).get(key)
               for section, key in (("organ_recognition", "top1"), ("organ_recognition", "top5"),
                                    ("abnormality", "auc_macro"), ("abnormality", "f1_macro"))}
    if "scan_labels" in metrics:
        for macro in ("macro", "macro_fvlm16"):
            for key in ("auc", "f1"):
                figures[f"scan_labels.{macro}.{key}"] = metrics["scan_labels"][macro][key]["value"]
    return figures
