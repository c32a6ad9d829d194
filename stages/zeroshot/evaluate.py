"""From predictions (+ labels) to the numbers in ``metrics.json``.

Intervals come from a scan-level bootstrap: each replicate redraws whole scans, so the
organs and abnormalities of one scan stay together and the macro average gets a
correct interval too. Thresholds are fixed before resampling.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stages.zeroshot.metrics import (THRESHOLD_METRICS, Estimate, best_f1_threshold, binary_metrics,
                                     bootstrap_counts, nearest_corner_threshold, topk_accuracy)

THRESHOLD_METHODS = ("roc", "given", "validation")
ABNORMALITY_METRICS = ("auc",) + THRESHOLD_METRICS


@dataclass(frozen=True)
class EvaluationConfig:
    """How metrics are computed: threshold rule and bootstrap."""

    threshold_method: str = "roc"  # roc: ROC point nearest (0,1); given: `threshold`; validation: best F1 on a split
    threshold: float = 0.5
    validation_fraction: float = 0.3
    resamples: int = 1000
    seed: int = 0


def pair_key(organ: str, abnormality: str) -> str:
    """Name of one evaluated (organ, abnormality) pair, e.g. ``kidney_left/cyst``."""
    return f"{organ}/{abnormality}"


def _nanmean_rows(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(matrix, axis=0)


def split_validation_scans(scan_ids: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded share of scans (at least one, never all) used only to choose thresholds."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    unique = sorted(set(scan_ids))
    if len(unique) < 2:
        raise ValueError("a validation split needs labelled predictions for at least 2 scans")
    count = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    chosen = np.random.default_rng(seed).permutation(len(unique))[:count]
    return {unique[i] for i in chosen}


def labelled_abnormality_scores(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Abnormality predictions joined to labels: scan_id, organ, abnormality, score, present, complete."""
    scored = predictions[predictions["task"] == "abnormality"].rename(columns={"label": "abnormality"})
    return scored[["scan_id", "organ", "abnormality", "score", "complete"]].merge(
        labels[["scan_id", "organ", "abnormality", "present"]], on=["scan_id", "organ", "abnormality"],
        how="inner")


def _thresholds(table: pd.DataFrame, validation: pd.DataFrame | None, config: EvaluationConfig,
                pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    chosen = {}
    for pair in pairs:
        if config.threshold_method == "given":
            chosen[pair] = float(config.threshold)
        elif config.threshold_method == "validation":
            rows = validation[(validation["organ"] == pair[0]) & (validation["abnormality"] == pair[1])]
            chosen[pair] = (best_f1_threshold(rows["present"].to_numpy(bool), rows["score"].to_numpy())
                            if len(rows) else float(config.threshold))
        else:
            rows = table[(table["organ"] == pair[0]) & (table["abnormality"] == pair[1])]
            chosen[pair] = nearest_corner_threshold(rows["present"].to_numpy(bool), rows["score"].to_numpy())
    return chosen


def abnormality_metrics(predictions: pd.DataFrame, labels: pd.DataFrame,
                        config: EvaluationConfig) -> tuple[dict, pd.DataFrame]:
    """The ``abnormality`` section of metrics.json and the evaluated rows (with thresholds)."""
    if config.threshold_method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold method must be one of {THRESHOLD_METHODS}, got {config.threshold_method!r}")
    joined = labelled_abnormality_scores(predictions, labels)
    validation = None
    threshold_info: dict[str, object] = {"method": {"roc": "roc_nearest_corner", "given": "given",
                                                    "validation": "validation_best_f1"}[config.threshold_method]}
    if config.threshold_method == "given":
        threshold_info["value"] = float(config.threshold)
    if config.threshold_method == "validation":
        validation_scans = split_validation_scans(joined["scan_id"].tolist(), config.validation_fraction,
                                                  config.seed)
        in_validation = joined["scan_id"].isin(validation_scans)
        validation, joined = joined[in_validation], joined[~in_validation]
        threshold_info.update(validation_fraction=config.validation_fraction,
                              validation_scans=sorted(validation_scans))
    pairs = sorted({(o, a) for o, a in zip(joined["organ"], joined["abnormality"])})
    thresholds = _thresholds(joined, validation, config, pairs)
    scans = sorted(joined["scan_id"].unique())
    scan_index = {scan: i for i, scan in enumerate(scans)}
    counts = bootstrap_counts(len(scans), config.resamples, config.seed)
    per_pair: dict[str, dict] = {}
    stacked = {name: [] for name in ABNORMALITY_METRICS}
    evaluated = []
    for organ, abnormality in pairs:
        rows = joined[(joined["organ"] == organ) & (joined["abnormality"] == abnormality)]
        present = rows["present"].to_numpy(bool)
        weights = counts[:, rows["scan_id"].map(scan_index).to_numpy()]
        values = binary_metrics(present, rows["score"].to_numpy(), thresholds[(organ, abnormality)], weights)
        per_pair[pair_key(organ, abnormality)] = {
            "organ": organ, "abnormality": abnormality, "n": int(len(rows)),
            "n_positive": int(present.sum()), "threshold": round(thresholds[(organ, abnormality)], 6),
            **{name: Estimate.from_replicates(values[name][0], values[name][1:]).to_dict()
               for name in ABNORMALITY_METRICS},
        }
        for name in ABNORMALITY_METRICS:
            stacked[name].append(values[name])
        evaluated.append(rows.assign(threshold=thresholds[(organ, abnormality)]))
    macro = {}
    for name in ABNORMALITY_METRICS:
        rows = _nanmean_rows(np.vstack(stacked[name])) if stacked[name] else np.full(1, np.nan)
        macro[name] = Estimate.from_replicates(rows[0], rows[1:]).to_dict()
    section = {
        **{f"{name}_macro": macro[name]["value"] for name in ABNORMALITY_METRICS},
        "macro": macro,
        "threshold": threshold_info,
        "n_scans": len(scans),
        "n_pairs": len(pairs),
        "n_labels_matched": int(len(joined) + (0 if validation is None else len(validation))),
        "n_labels_unmatched": int(len(labels) - len(joined) - (0 if validation is None else len(validation))),
        "bootstrap": {"resamples": config.resamples, "seed": config.seed, "unit": "scan",
                      "interval": "95% percentile"},
        "per_abnormality": per_pair,
    }
    columns = ["scan_id", "organ", "abnormality", "score", "present", "complete", "threshold"]
    evaluated_rows = pd.concat(evaluated, ignore_index=True) if evaluated else pd.DataFrame(columns=columns)
    return section, evaluated_rows


def organ_recognition_metrics(predictions: pd.DataFrame, config: EvaluationConfig) -> dict:
    """Top-1/top-5 accuracy overall (with bootstrap intervals), on complete organs only, and per organ.

    Organs cut by the scan border are scored too; ``complete_only`` shows how much they weigh.
    """
    rows = predictions[predictions["task"] == "organ_recognition"]
    ranks = rows["rank"].to_numpy(dtype=np.float64)
    scans = sorted(rows["scan_id"].unique())
    counts = bootstrap_counts(len(scans), config.resamples, config.seed)
    weights = counts[:, rows["scan_id"].map({s: i for i, s in enumerate(scans)}).to_numpy()]
    section: dict[str, object] = {}
    for k in (1, 5):
        hits = (ranks <= k).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates = (weights @ hits) / weights.sum(axis=1)
        estimate = Estimate.from_replicates(topk_accuracy(ranks, k), replicates).to_dict()
        section[f"top{k}"] = estimate["value"]
        section[f"top{k}_ci"] = [estimate["ci_low"], estimate["ci_high"]]
    complete = rows[rows["complete"].astype(bool)]
    section.update(
        n=int(len(rows)), n_scans=len(scans), n_incomplete=int(len(rows) - len(complete)),
        complete_only={"top1": topk_accuracy(complete["rank"].to_numpy(), 1),
                       "top5": topk_accuracy(complete["rank"].to_numpy(), 5), "n": int(len(complete))},
        per_organ={organ: {"top1": topk_accuracy(group["rank"].to_numpy(), 1),
                           "top5": topk_accuracy(group["rank"].to_numpy(), 5), "n": int(len(group))}
                   for organ, group in rows.groupby("organ", sort=True)},
    )
    return section
