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

from stages.common.errors import SetupError
from stages.zeroshot.metrics import (F1_KINDS, THRESHOLD_METRICS, Estimate, best_f1_threshold, binary_metrics,
                                     bootstrap_counts, grid_nearest_corner_threshold, nearest_corner_threshold,
                                     topk_accuracy)

THRESHOLD_METHODS = ("roc", "roc_grid", "given", "validation")
THRESHOLD_NAMES = {"roc": "roc_nearest_corner", "roc_grid": "roc_nearest_corner_grid100", "given": "given",
                   "validation": "validation_best_f1"}
ABNORMALITY_METRICS = ("auc",) + THRESHOLD_METRICS
BOOTSTRAP_NOTE = {"unit": "scan", "interval": "95% percentile"}


@dataclass(frozen=True)
class EvaluationConfig:
    """How metrics are computed: threshold rule, F1 flavour and bootstrap."""

    threshold_method: str = "roc"  # roc: ROC point nearest (0,1); roc_grid: CT-CLIP's grid rule (score > t);
    threshold: float = 0.5         # given: `threshold`; validation: best F1 on a split
    validation_fraction: float = 0.3
    resamples: int = 1000
    seed: int = 0
    f1: str = "binary"  # or "weighted" (CT-CLIP, fVLM)

    def __post_init__(self) -> None:
        if self.threshold_method not in THRESHOLD_METHODS:
            raise SetupError(f"threshold method must be one of {THRESHOLD_METHODS}, got {self.threshold_method!r}")
        if self.f1 not in F1_KINDS:
            raise SetupError(f"f1 must be one of {F1_KINDS}, got {self.f1!r}")

    @property
    def strict(self) -> bool:
        """CT-CLIP's rule predicts ``score > t``; every other rule ``score >= t``."""
        return self.threshold_method == "roc_grid"


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
        raise SetupError(f"validation fraction must be between 0 and 1, got {fraction}")
    unique = sorted(set(scan_ids))
    if len(unique) < 2:
        raise SetupError("a validation split needs labelled predictions for at least 2 scans")
    count = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    chosen = np.random.default_rng(seed).permutation(len(unique))[:count]
    return {unique[i] for i in chosen}


def labelled_abnormality_scores(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Abnormality predictions joined to labels: scan_id, organ, abnormality, score, present, complete."""
    scored = predictions[predictions["task"] == "abnormality"].rename(columns={"label": "abnormality"})
    return scored[["scan_id", "organ", "abnormality", "score", "complete"]].merge(
        labels[["scan_id", "organ", "abnormality", "present"]], on=["scan_id", "organ", "abnormality"],
        how="inner")


def _threshold(rows: pd.DataFrame, validation_rows: pd.DataFrame | None, config: EvaluationConfig) -> float:
    if config.threshold_method == "given":
        return float(config.threshold)
    if config.threshold_method == "validation":
        return (best_f1_threshold(validation_rows["present"].to_numpy(bool), validation_rows["score"].to_numpy())
                if len(validation_rows) else float(config.threshold))
    rule = grid_nearest_corner_threshold if config.threshold_method == "roc_grid" else nearest_corner_threshold
    return rule(rows["present"].to_numpy(bool), rows["score"].to_numpy())


@dataclass
class KeyedEvaluation:
    """Metrics of every key (a pair or a scan label) on one shared set of bootstrap replicates."""

    per_key: dict[tuple, dict]  # key -> n, n_positive, threshold, and one estimate per metric
    replicates: dict[tuple, dict[str, np.ndarray]]  # key -> metric -> [1 + resamples] (point estimate first)
    threshold_info: dict[str, object]
    n_scans: int
    n_validation_rows: int
    evaluated: pd.DataFrame  # the evaluated rows with their threshold

    def macro(self, keys: list[tuple] | None = None) -> dict[str, dict]:
        """Mean over ``keys`` (default all) of each metric, per replicate; undefined keys skipped."""
        chosen = [self.replicates[key] for key in (self.per_key if keys is None else keys)]
        result = {}
        for name in ABNORMALITY_METRICS:
            rows = _nanmean_rows(np.vstack([c[name] for c in chosen])) if chosen else np.full(1, np.nan)
            result[name] = Estimate.from_replicates(rows[0], rows[1:]).to_dict()
        return result


def evaluate_keyed(joined: pd.DataFrame, key_columns: list[str], config: EvaluationConfig) -> KeyedEvaluation:
    """Per key of ``joined`` (scan_id, *key_columns, score, present): AUC and thresholded metrics with
    scan-level bootstrap intervals. Thresholds are fixed before resampling."""
    validation = None
    threshold_info: dict[str, object] = {"method": THRESHOLD_NAMES[config.threshold_method],
                                         "prediction": "score > threshold" if config.strict else "score >= threshold"}
    if config.threshold_method == "given":
        threshold_info["value"] = float(config.threshold)
    if config.threshold_method == "validation":
        validation_scans = split_validation_scans(joined["scan_id"].tolist(), config.validation_fraction,
                                                  config.seed)
        in_validation = joined["scan_id"].isin(validation_scans)
        validation, joined = joined[in_validation], joined[~in_validation]
        threshold_info.update(validation_fraction=config.validation_fraction,
                              validation_scans=sorted(validation_scans))
    scans = sorted(joined["scan_id"].unique())
    scan_index = {scan: i for i, scan in enumerate(scans)}
    counts = bootstrap_counts(len(scans), config.resamples, config.seed)
    per_key, replicates, evaluated = {}, {}, []
    for key, rows in joined.groupby(key_columns, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        validation_rows = None
        if validation is not None:
            validation_rows = validation[np.logical_and.reduce(
                [validation[column] == value for column, value in zip(key_columns, key)])]
        threshold = _threshold(rows, validation_rows, config)
        present = rows["present"].to_numpy(bool)
        weights = counts[:, rows["scan_id"].map(scan_index).to_numpy()]
        values = binary_metrics(present, rows["score"].to_numpy(), threshold, weights, strict=config.strict,
                                f1=config.f1)
        per_key[key] = {"n": int(len(rows)), "n_positive": int(present.sum()), "threshold": round(threshold, 6),
                        **{name: Estimate.from_replicates(values[name][0], values[name][1:]).to_dict()
                           for name in ABNORMALITY_METRICS}}
        replicates[key] = values
        evaluated.append(rows.assign(threshold=threshold))
    columns = [*joined.columns, "threshold"]
    evaluated_rows = pd.concat(evaluated, ignore_index=True) if evaluated else pd.DataFrame(columns=columns)
    return KeyedEvaluation(per_key, replicates, threshold_info, len(scans),
                           0 if validation is None else len(validation), evaluated_rows)


def bootstrap_info(config: EvaluationConfig) -> dict[str, object]:
    return {"resamples": config.resamples, "seed": config.seed, **BOOTSTRAP_NOTE}


def abnormality_metrics(predictions: pd.DataFrame, labels: pd.DataFrame,
                        config: EvaluationConfig) -> tuple[dict, pd.DataFrame]:
    """The ``abnormality`` section of metrics.json (organ-level pairs) and the evaluated rows."""
    joined = labelled_abnormality_scores(predictions, labels)
    result = evaluate_keyed(joined, ["organ", "abnormality"], config)
    macro = result.macro()
    section = {
        **{f"{name}_macro": macro[name]["value"] for name in ABNORMALITY_METRICS},
        "macro": macro,
        "f1_kind": config.f1,
        "threshold": result.threshold_info,
        "n_scans": result.n_scans,
        "n_pairs": len(result.per_key),
        "n_labels_matched": int(len(result.evaluated) + result.n_validation_rows),
        "n_labels_unmatched": int(len(labels) - len(result.evaluated) - result.n_validation_rows),
        "bootstrap": bootstrap_info(config),
        "per_abnormality": {pair_key(organ, abnormality): {"organ": organ, "abnormality": abnormality, **values}
                            for (organ, abnormality), values in result.per_key.items()},
    }
    return section, result.evaluated


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
