"""Binary-classification metrics with scan-level bootstrap intervals (numpy only).

Every metric takes a weight matrix ``[B, n]`` (one row per bootstrap replicate, the
number of times each sample was drawn), so the point estimate (all weights 1) and
1,000 bootstrap replicates go through the same vectorised code. Undefined values
(AUC without positives, sensitivity without positives, ...) are NaN, never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD_METRICS = ("f1", "sensitivity", "specificity", "precision", "accuracy")
F1_KINDS = ("binary", "weighted")
CTCLIP_GRID = np.linspace(0.0, 1.0, 100)


def _as_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones((1, n), dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    return weights[None, :] if weights.ndim == 1 else weights


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted ROC AUC (Mann-Whitney, ties count one half), one value per weight row."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    w = _as_weights(weights, len(scores))
    unique_scores, group = np.unique(scores, return_inverse=True)
    positive = np.zeros((w.shape[0], len(unique_scores)))
    negative = np.zeros_like(positive)
    np.add.at(positive.T, group[labels], w[:, labels].T)
    np.add.at(negative.T, group[~labels], w[:, ~labels].T)
    negatives_below = np.cumsum(negative, axis=1) - negative
    wins = np.sum(positive * (negatives_below + 0.5 * negative), axis=1)
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def threshold_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float,
                      weights: np.ndarray | None = None, strict: bool = False,
                      f1: str = "binary") -> dict[str, np.ndarray]:
    """F1, sensitivity, specificity, precision, accuracy of ``score >= threshold`` (``>`` when
    ``strict``, as CT-CLIP's code predicts), per weight row.

    ``f1="binary"`` is the positive class's F1; ``"weighted"`` averages the F1 of both classes
    weighted by their support (scikit-learn's ``average="weighted"``, which CT-CLIP and fVLM
    report). Precision and F1 are 0 when nothing is predicted positive (as scikit-learn's
    ``zero_division=0``); sensitivity is NaN without positives, specificity without negatives.
    """
    if f1 not in F1_KINDS:
        raise ValueError(f"f1 must be one of {F1_KINDS}, got {f1!r}")
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = scores > threshold if strict else scores >= threshold
    w = _as_weights(weights, len(labels))
    tp = w[:, labels & predicted].sum(axis=1)
    fp = w[:, ~labels & predicted].sum(axis=1)
    fn = w[:, labels & ~predicted].sum(axis=1)
    tn = w[:, ~labels & ~predicted].sum(axis=1)

    def ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
        safe = np.where(denominator > 0, denominator, 1.0)
        return np.where(denominator > 0, numerator / safe, empty)

    f1_positive = ratio(2 * tp, 2 * tp + fp + fn, 0.0)
    if f1 == "weighted":
        f1_negative = ratio(2 * tn, 2 * tn + fp + fn, 0.0)
        f1_value = ratio((tp + fn) * f1_positive + (tn + fp) * f1_negative, tp + fn + tn + fp, np.nan)
    else:
        f1_value = np.where(tp + fn > 0, f1_positive, np.nan)
    return {
        "f1": f1_value,
        "sensitivity": ratio(tp, tp + fn, np.nan),
        "specificity": ratio(tn, tn + fp, np.nan),
        "precision": ratio(tp, tp + fp, 0.0),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn, np.nan),
    }


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, highest first; ``score >= t`` is positive."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(scores) - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_tie]
    false_positives = np.cumsum(~sorted_labels)[last_of_tie]
    positives, negatives = labels.sum(), (~labels).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = true_positives / positives if positives else np.full(len(last_of_tie), np.nan)
        fpr = false_positives / negatives if negatives else np.full(len(last_of_tie), np.nan)
    return fpr, tpr, sorted_scores[last_of_tie]


def nearest_corner_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold of the ROC point nearest (0, 1), as CT-CLIP and fVLM report; highest on ties."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    distance = fpr ** 2 + (1.0 - tpr) ** 2
    if np.all(np.isnan(distance)):
        return float(np.median(scores))
    return float(thresholds[int(np.nanargmin(distance))])


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold (a score value) with the highest F1; highest threshold on ties."""
    labels = np.asarray(labels, dtype=bool)
    _, _, thresholds = roc_curve(labels, scores)
    f1 = np.array([threshold_metrics(labels, scores, t)["f1"][0] for t in thresholds])
    if np.all(np.isnan(f1)):
        return float(np.median(scores))
    return float(thresholds[int(np.nanargmax(f1))])


def grid_nearest_corner_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """CT-CLIP's threshold rule (``find_threshold`` in its bootstrap script, which fVLM reuses):
    of 100 evenly spaced thresholds in [0, 1], the one whose ``score > t`` point lies nearest
    (0, 1) on the ROC plane; the highest on ties. Scores must be probabilities."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        return float(np.median(scores))
    predicted = scores[None, :] > CTCLIP_GRID[:, None]
    tpr = (predicted & labels).sum(axis=1) / labels.sum()
    fpr = (predicted & ~labels).sum(axis=1) / (~labels).sum()
    distance = np.sqrt((1.0 - tpr) ** 2 + fpr ** 2)
    return float(CTCLIP_GRID[len(distance) - 1 - int(np.argmin(distance[::-1]))])


def bootstrap_counts(n_groups: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n_groups]``: how often each group (scan) is drawn in each replicate."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    counts = np.zeros((resamples, n_groups), dtype=np.float64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap 95 % interval (percentile method)."""

    value: float
    ci_low: float
    ci_high: float

    @classmethod
    def from_replicates(cls, value: float, replicates: np.ndarray) -> "Estimate":
        finite = replicates[np.isfinite(replicates)]
        if finite.size == 0 or not np.isfinite(value):
            return cls(float(value), float("nan"), float("nan"))
        low, high = np.percentile(finite, [2.5, 97.5])
        return cls(float(value), float(low), float(high))

    def to_dict(self) -> dict[str, float | None]:
        return {key: (round(v, 6) if np.isfinite(v) else None)
                for key, v in (("value", self.value), ("ci_low", self.ci_low), ("ci_high", self.ci_high))}


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float,
                   weights: np.ndarray, strict: bool = False, f1: str = "binary") -> dict[str, np.ndarray]:
    """AUC plus threshold metrics for the all-ones row followed by the given replicate rows."""
    labels = np.asarray(labels, dtype=bool)
    rows = np.vstack([np.ones((1, len(labels))), weights])
    return {"auc": auc(labels, scores, rows),
            **threshold_metrics(labels, scores, threshold, rows, strict=strict, f1=f1)}


def topk_accuracy(ranks: np.ndarray, k: int) -> float:
    """Share of samples whose true class ranks within the top ``k`` (rank 1 = best)."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks <= k)) if ranks.size else float("nan")
