"""Zero-shot metrics against hand-computed values and brute-force reference computations."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.common.errors import SetupError
from stages.zeroshot.evaluate import (EvaluationConfig, abnormality_metrics, organ_recognition_metrics,
                                      split_validation_scans)
from stages.zeroshot.metrics import (Estimate, auc, best_f1_threshold, bootstrap_counts,
                                     nearest_corner_threshold, roc_curve, threshold_metrics, topk_accuracy)


def brute_force_auc(labels, scores) -> float:
    """Probability a random positive outscores a random negative (ties 1/2), by enumerating pairs."""
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_auc_hand_computed():
    # positives 0.9 and 0.4; negatives 0.8 and 0.3: pairs won 0.9>0.8, 0.9>0.3, 0.4>0.3 -> 3/4
    assert auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.3]))[0] == pytest.approx(0.75)
    assert auc(np.array([1, 0]), np.array([0.5, 0.5]))[0] == pytest.approx(0.5)
    assert auc(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]))[0] == pytest.approx(0.0)
    assert np.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2]))[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6), st.integers(0, 3)), min_size=2, max_size=30))
def test_weighted_auc_equals_auc_of_repeated_samples(rows):
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] / 6.0 for r in rows])  # few distinct values -> many ties
    counts = np.array([r[2] for r in rows], dtype=float)
    repeated_labels = np.repeat(labels, counts.astype(int))
    repeated_scores = np.repeat(scores, counts.astype(int))
    value = auc(labels, scores, counts)[0]
    if repeated_labels.any() and not repeated_labels.all():
        assert value == pytest.approx(brute_force_auc(repeated_labels, repeated_scores))
    else:
        assert np.isnan(value)


def test_threshold_metrics_hand_computed():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.05])
    values = {k: v[0] for k, v in threshold_metrics(labels, scores, 0.5).items()}
    # predicted positive: 0.9, 0.6 (TP), 0.7 (FP); FN: 0.2; TN: 0.3, 0.1, 0.05
    assert values["sensitivity"] == pytest.approx(2 / 3)
    assert values["specificity"] == pytest.approx(3 / 4)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert values["accuracy"] == pytest.approx(5 / 7)
    nothing = {k: v[0] for k, v in threshold_metrics(labels, scores, 2.0).items()}
    assert nothing["precision"] == 0.0 and nothing["f1"] == 0.0 and nothing["specificity"] == 1.0


def test_threshold_metrics_weights_count_samples():
    labels = np.array([1, 0, 1])
    scores = np.array([0.8, 0.7, 0.1])
    weighted = threshold_metrics(labels, scores, 0.5, np.array([[2.0, 1.0, 0.0]]))
    repeated = threshold_metrics(np.array([1, 1, 0]), np.array([0.8, 0.8, 0.7]), 0.5)
    for name in weighted:
        np.testing.assert_allclose(weighted[name], repeated[name])


def test_roc_curve_and_nearest_corner_threshold():
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(tpr, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(fpr, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    # distances^2: 4/9, 5/9, 2/9, 5/9, 4/9, 1 -> the point at threshold 0.7
    assert nearest_corner_threshold(labels, scores) == pytest.approx(0.7)


def test_roc_curve_groups_ties():
    fpr, tpr, thresholds = roc_curve(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.2]))
    np.testing.assert_allclose(thresholds, [0.5, 0.2])
    np.testing.assert_allclose(tpr, [0.5, 1.0])
    np.testing.assert_allclose(fpr, [1.0, 1.0])


def test_roc_area_matches_auc():
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.random(200) + labels * 0.4, 2)
    fpr, tpr, _ = roc_curve(labels, scores)
    trapezoid = np.trapezoid(np.r_[0, tpr], np.r_[0, fpr])
    assert trapezoid == pytest.approx(auc(labels, scores)[0])
    assert auc(labels, scores)[0] == pytest.approx(brute_force_auc(labels, scores))


def test_best_f1_threshold():
    labels = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    # t=0.9: F1 2/4; 0.8: 4/5; 0.7: 4/6; 0.6: 6/7 (best); 0.2: 6/8; 0.1: 6/9
    assert best_f1_threshold(labels, scores) == pytest.approx(0.6)


def test_bootstrap_counts_are_seeded_resamples():
    counts = bootstrap_counts(7, 1000, seed=11)
    assert counts.shape == (1000, 7)
    assert np.all(counts.sum(axis=1) == 7)
    np.testing.assert_array_equal(counts, bootstrap_counts(7, 1000, seed=11))
    assert not np.array_equal(counts, bootstrap_counts(7, 1000, seed=12))
    assert counts.mean() == pytest.approx(1.0, abs=0.05)


def test_bootstrap_interval_covers_and_narrows_with_more_data():
    rng = np.random.default_rng(0)

    def interval(n):
        labels = rng.random(n) < 0.4
        scores = rng.normal(size=n) + labels
        counts = bootstrap_counts(n, 1000, seed=0)
        replicates = auc(labels, scores, counts)
        return Estimate.from_replicates(auc(labels, scores)[0], replicates)

    small, large = interval(60), interval(1500)
    assert small.ci_low <= small.value <= small.ci_high
    assert large.ci_low <= large.value <= large.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low)
    # the AUC of N(1,1) vs N(0,1) is Phi(1/sqrt(2)) = 0.7602
    assert large.ci_low < 0.7602 < large.ci_high


def test_estimate_without_finite_replicates_is_undefined():
    estimate = Estimate.from_replicates(float("nan"), np.full(5, np.nan))
    assert estimate.to_dict() == {"value": None, "ci_low": None, "ci_high": None}


def test_topk_accuracy():
    assert topk_accuracy(np.array([1, 2, 6, 1]), 1) == pytest.approx(0.5)
    assert topk_accuracy(np.array([1, 2, 6, 1]), 5) == pytest.approx(0.75)


def _predictions_and_labels():
    rng = np.random.default_rng(5)
    rows, labels = [], []
    for scan in range(40):
        scan_id = f"s{scan:03d}"
        for organ, abnormality, shift in (("liver", "steatosis", 2.0), ("kidney_left", "cyst", 0.3)):
            present = bool(rng.random() < 0.4)
            score = float(1 / (1 + np.exp(-(rng.normal() + shift * present))))
            rows.append(dict(scan_id=scan_id, organ=organ, task="abnormality", label=abnormality, score=score,
                             predicted_organ="", rank=pd.NA, complete=scan % 5 != 0))
            labels.append(dict(scan_id=scan_id, organ=organ, abnormality=abnormality, present=present))
        labels.append(dict(scan_id=scan_id, organ="spleen", abnormality="splenomegaly", present=False))
    return pd.DataFrame(rows), pd.DataFrame(labels)


def test_abnormality_metrics_per_pair_and_macro():
    predictions, labels = _predictions_and_labels()
    section, evaluated = abnormality_metrics(predictions, labels, EvaluationConfig(resamples=200))
    assert section["n_pairs"] == 2 and section["n_scans"] == 40
    assert section["n_labels_unmatched"] == 40  # spleen labels have no prediction
    per_pair = section["per_abnormality"]
    for key, (organ, abnormality) in {"liver/steatosis": ("liver", "steatosis"),
                                      "kidney_left/cyst": ("kidney_left", "cyst")}.items():
        rows = predictions[(predictions.organ == organ) & (predictions.label == abnormality)]
        truth = labels[(labels.organ == organ) & (labels.abnormality == abnormality)]
        merged = rows.merge(truth, left_on=["scan_id"], right_on=["scan_id"])
        expected = brute_force_auc(merged["present"].to_numpy(), merged["score"].to_numpy())
        assert per_pair[key]["auc"]["value"] == pytest.approx(expected, abs=1e-6)
        assert per_pair[key]["threshold"] == pytest.approx(
            nearest_corner_threshold(merged["present"].to_numpy(), merged["score"].to_numpy()), abs=1e-6)
        assert per_pair[key]["auc"]["ci_low"] <= per_pair[key]["auc"]["value"] <= per_pair[key]["auc"]["ci_high"]
    assert section["auc_macro"] == pytest.approx(
        (per_pair["liver/steatosis"]["auc"]["value"] + per_pair["kidney_left/cyst"]["auc"]["value"]) / 2, abs=1e-6)
    assert per_pair["liver/steatosis"]["auc"]["value"] > per_pair["kidney_left/cyst"]["auc"]["value"]
    assert section["threshold"]["method"] == "roc_nearest_corner"
    assert len(evaluated) == 80 and set(evaluated.columns) >= {"present", "score", "threshold"}


def test_given_threshold_and_validation_split():
    predictions, labels = _predictions_and_labels()
    given_section, _ = abnormality_metrics(predictions, labels,
                                           EvaluationConfig(threshold_method="given", threshold=0.7,
                                                            resamples=50))
    assert given_section["threshold"] == {"method": "given", "value": 0.7, "prediction": "score >= threshold"}
    assert all(p["threshold"] == 0.7 for p in given_section["per_abnormality"].values())
    split_section, evaluated = abnormality_metrics(
        predictions, labels, EvaluationConfig(threshold_method="validation", validation_fraction=0.25,
                                              resamples=50, seed=3))
    validation_scans = set(split_section["threshold"]["validation_scans"])
    assert len(validation_scans) == 10 and split_section["n_scans"] == 30
    assert not validation_scans & set(evaluated["scan_id"])
    validation = predictions[predictions.scan_id.isin(validation_scans) & (predictions.organ == "liver")]
    truth = labels[labels.scan_id.isin(validation_scans) & (labels.organ == "liver")]
    merged = validation.merge(truth, on=["scan_id", "organ"])
    assert split_section["per_abnormality"]["liver/steatosis"]["threshold"] == pytest.approx(
        best_f1_threshold(merged["present"].to_numpy(), merged["score"].to_numpy()), abs=1e-6)


def test_validation_split_rejects_bad_fraction():
    with pytest.raises(SetupError, match="between 0 and 1"):
        split_validation_scans(["a", "b"], 1.5, 0)
    assert len(split_validation_scans(["a", "b", "c", "d"], 0.5, 0)) == 2


def test_organ_recognition_metrics():
    rows = [dict(scan_id=f"s{i // 3}", organ=organ, task="organ_recognition", label=organ, score=0.5,
                 predicted_organ=organ if rank == 1 else "spleen", rank=rank, complete=True)
            for i, (organ, rank) in enumerate([("liver", 1), ("spleen", 1), ("heart", 3)] * 4)]
    rows[2]["complete"] = rows[5]["complete"] = False  # two of the four hearts are cut by the border
    section = organ_recognition_metrics(pd.DataFrame(rows), EvaluationConfig(resamples=100))
    assert section["complete_only"] == {"top1": pytest.approx(8 / 10), "top5": 1.0, "n": 10}
    assert section["n_incomplete"] == 2
    assert section["top1"] == pytest.approx(8 / 12) and section["top5"] == pytest.approx(1.0)
    assert section["per_organ"]["heart"] == {"top1": 0.0, "top5": 1.0, "n": 4}
    assert section["top1_ci"][0] <= section["top1"] <= section["top1_ci"][1]
