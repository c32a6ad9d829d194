"""Scan-level (wide, CT-RATE-style) labels, the label map and the published protocols' rules."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from stages.common.errors import SetupError
from stages.zeroshot.evaluate import EvaluationConfig, abnormality_metrics
from stages.zeroshot.io import ZeroshotInputError
from stages.zeroshot.label_map import DEFAULT_LABEL_MAP, load_label_map
from stages.zeroshot.metrics import auc, grid_nearest_corner_threshold, threshold_metrics
from stages.zeroshot.prompts import abnormality_prompts, load_templates
from stages.zeroshot.protocols import get_protocol
from stages.zeroshot.scan_labels import (attach_to_scans, labels_format, read_wide_labels, scan_label_metrics,
                                         scan_label_rows)

CTRATE_18 = ["Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
             "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
             "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion",
             "Mosaic attenuation pattern", "Peribronchial thickening", "Consolidation", "Bronchiectasis",
             "Interlobular septal thickening"]
LUNGS = ("lung_left", "lung_right")


def test_shipped_label_map_covers_ctrate_and_synth():
    from stages.synth.labelspace import ABNORMALITIES

    label_map = load_label_map()
    assert set(CTRATE_18) <= set(label_map.labels) and label_map.aggregate == "max"
    fvlm16 = [name for name in CTRATE_18 if label_map.labels[name].fvlm16]
    assert len(fvlm16) == 16 and set(CTRATE_18) - set(fvlm16) == {"Medical material", "Lymphadenopathy"}
    organs = {name: entry.organs for name, entry in label_map.labels.items()}
    assert organs["Lung nodule"] == LUNGS and organs["Arterial wall calcification"] == ("aorta",)
    assert {organs[n] for n in ("Cardiomegaly", "Pericardial effusion", "Coronary artery wall calcification")} \
        == {("heart",)}
    assert organs["Hiatal hernia"] == ("esophagus", "stomach")
    assert organs["Lymphadenopathy"] == organs["Medical material"] == ()
    # every synth finding has exactly one scan-level label
    carried = {(organ, entry.phrase) for entry in label_map.labels.values() for organ in entry.organs}
    assert {(organ, phrase) for organ, phrases in ABNORMALITIES.items() for phrase in phrases} <= carried


@pytest.mark.parametrize("content, message", [
    ({"labels": {"X": {"organs": ["lungs"], "phrase": "x"}}}, "not in the anatomy table"),
    ({"labels": {"X": {"organs": ["liver"]}}}, "needs 'organs'"),
    ({"labels": {}}, "non-empty 'labels'"),
    ({"aggregate": "median", "labels": {"X": {"organs": [], "phrase": "x"}}}, "'aggregate' must be"),
])
def test_bad_label_maps_name_the_file(tmp_path, content, message):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ZeroshotInputError, match=message) as error:
        load_label_map(path)
    assert str(path) in str(error.value)


def test_label_map_yaml_replaces_the_shipped_one(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("aggregate: mean\nlabels:\n  Fatty liver: {organs: [liver], phrase: steatosis}\n")
    label_map = load_label_map(path)
    assert list(label_map.labels) == ["Fatty liver"] and label_map.aggregate == "mean"
    assert label_map.describe()["source"] == str(path) and load_label_map().source == "default"
    assert DEFAULT_LABEL_MAP.is_file()


def _write(path, text):
    path.write_text(text)
    return path


def test_labels_format_is_detected_from_columns(tmp_path):
    assert labels_format(_write(tmp_path / "a.csv", "scan_id,organ,abnormality,present\n")) == "long"
    assert labels_format(_write(tmp_path / "b.csv", "VolumeName,Cardiomegaly\n")) == "wide"
    assert labels_format(_write(tmp_path / "c.csv", "scan_id,Emphysema\n")) == "wide"
    with pytest.raises(ZeroshotInputError, match="VolumeName/scan_id"):
        labels_format(_write(tmp_path / "d.csv", "id,finding\n"))


def test_read_wide_labels_strips_nifti_suffix_and_dedupes(tmp_path):
    path = _write(tmp_path / "wide.csv", "VolumeName,Lung nodule,Cardiomegaly\n"
                                         "valid_1_a_1.nii.gz,1,0\nvalid_1_a_2.nii,0,1\nvalid_2_a,0.0,1.0\n"
                                         "valid_2_a,0,1\n")
    table = read_wide_labels(path, load_label_map())
    assert sorted(set(table.scan_id)) == ["valid_1_a_1", "valid_1_a_2", "valid_2_a"]
    assert len(table) == 6  # the repeated identical row counts once
    truth = {(s, l): p for s, l, p in table.itertuples(index=False)}
    assert truth[("valid_1_a_1", "Lung nodule")] and not truth[("valid_1_a_1", "Cardiomegaly")]
    assert truth[("valid_2_a", "Cardiomegaly")]


@pytest.mark.parametrize("content, message", [
    ("VolumeName,Lung nodule,Broken leg,Fever\na,1,0,0\n", r"\['Broken leg', 'Fever'\] are not labels"),
    ("VolumeName,Lung nodule\na,1\nb,maybe\n", "line 3, column 'Lung nodule'"),
    ("VolumeName,Lung nodule\na,1\nb,\n", "line 3"),
    ("VolumeName,scan_id,Lung nodule\na,a,1\n", "one id column"),
    ("VolumeName,Lung nodule\na,1\na.nii.gz,0\n", "more than once with different"),
    ("VolumeName\na\n", "no label columns"),
])
def test_bad_wide_labels_name_the_file(tmp_path, content, message):
    path = _write(tmp_path / "wide.csv", content)
    with pytest.raises(ZeroshotInputError, match=message) as error:
        read_wide_labels(path, load_label_map())
    assert str(path) in str(error.value)


def test_reconstructions_share_their_scans_labels_and_unmatched_ids_are_listed(tmp_path):
    labels = pd.DataFrame({"scan_id": ["valid_1_a", "valid_2_a_1"], "label": ["Emphysema"] * 2,
                           "present": [True, False]})
    attached = attach_to_scans(labels, ["valid_1_a_1", "valid_1_a_2", "valid_2_a_1", "valid_3_a_1"],
                               tmp_path / "l.csv", "CT")
    assert dict(zip(attached.scan_id, attached.present)) == {"valid_1_a_1": True, "valid_1_a_2": True,
                                                             "valid_2_a_1": False}
    with pytest.raises(ZeroshotInputError, match=r"2 of 2 labelled scan ids match no scan in CT: valid_1_a, "
                                                 r"valid_2_a_1"):
        attach_to_scans(labels, ["other"], tmp_path / "l.csv", "CT")


def _organ_predictions(n_scans: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per scan: both lungs scored for 'nodule', the heart for 'cardiomegaly'; long truth per organ."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for scan in range(n_scans):
        for organ, phrase in (("lung_left", "nodule"), ("lung_right", "nodule"), ("heart", "cardiomegaly")):
            present = bool(rng.random() < 0.3)
            score = float(1 / (1 + np.exp(-(rng.normal() + 1.5 * present))))
            rows.append(dict(scan_id=f"s{scan:02d}", organ=organ, task="abnormality", label=phrase, score=score,
                             predicted_organ=None, rank=pd.NA, complete=True))
            truth.append(dict(scan_id=f"s{scan:02d}", organ=organ, abnormality=phrase, present=present))
    return pd.DataFrame(rows), pd.DataFrame(truth)


def _scan_truth(truth: pd.DataFrame) -> pd.DataFrame:
    names = {"nodule": "Lung nodule", "cardiomegaly": "Cardiomegaly"}
    scan = truth.assign(label=truth.abnormality.map(names)).groupby(["scan_id", "label"])["present"].max()
    return scan.reset_index()


def test_scan_scores_are_the_max_over_the_labels_organs():
    predictions, _ = _organ_predictions()
    rows = scan_label_rows(predictions, ["Lung nodule", "Cardiomegaly"], load_label_map(), "phrase")
    assert set(rows.task) == {"scan_label"} and len(rows) == 120
    lungs = predictions[predictions.label == "nodule"]
    best = lungs.loc[lungs.groupby("scan_id").score.idxmax()].set_index("scan_id")
    nodule = rows[rows.label == "Lung nodule"].set_index("scan_id")
    np.testing.assert_allclose(nodule.score, best.score.loc[nodule.index])
    assert (nodule.organ == best.organ.loc[nodule.index]).all()


def test_scan_label_metrics_agree_with_organ_level_metrics():
    predictions, truth = _organ_predictions()
    label_map = load_label_map()
    predictions = pd.concat([predictions, scan_label_rows(predictions, ["Lung nodule", "Cardiomegaly"], label_map,
                                                          "phrase")], ignore_index=True)
    config = EvaluationConfig(resamples=200)
    section, evaluated = scan_label_metrics(predictions, _scan_truth(truth), label_map, config, {})
    organ_section, _ = abnormality_metrics(predictions, truth, config)
    per_label = section["per_label"]
    # a one-organ label is the organ-level pair, scan by scan: same AUC, same interval
    assert per_label["Cardiomegaly"]["auc"] == organ_section["per_abnormality"]["heart/cardiomegaly"]["auc"]
    nodule = evaluated[evaluated.label == "Lung nodule"]
    assert per_label["Lung nodule"]["auc"]["value"] == pytest.approx(
        float(auc(nodule.present.to_numpy(), nodule.score.to_numpy())[0]), abs=1e-6)
    assert per_label["Lung nodule"]["n"] == 60 and per_label["Lung nodule"]["n_unscored"] == 0
    assert section["macro"]["auc"]["value"] == pytest.approx(
        (per_label["Lung nodule"]["auc"]["value"] + per_label["Cardiomegaly"]["auc"]["value"]) / 2, abs=1e-6)
    assert section["macro_fvlm16"]["n_labels"] == 2 and section["aggregate"] == "max"
    for name in ("auc", "f1", "accuracy", "precision", "sensitivity", "specificity"):
        estimate = per_label["Lung nodule"][name]
        assert estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"]


def test_macro_fvlm16_leaves_out_labels_fvlm_drops():
    label_map = load_label_map()
    rng = np.random.default_rng(1)
    scans = [f"s{i}" for i in range(30)]
    rows, truth = [], []
    for name in ("Cardiomegaly", "Medical material", "Splenomegaly"):
        present = rng.random(30) < 0.4
        score = rng.random(30) + present
        rows += [dict(scan_id=s, organ="x", task="scan_label", label=name, score=v) for s, v in zip(scans, score)]
        truth += [dict(scan_id=s, label=name, present=p) for s, p in zip(scans, present)]
    section, _ = scan_label_metrics(pd.DataFrame(rows), pd.DataFrame(truth), label_map, EvaluationConfig(resamples=50),
                                    {"Lymphadenopathy": "no organ"})
    assert section["macro"]["labels"] == ["Cardiomegaly", "Medical material", "Splenomegaly"]
    assert section["macro_fvlm16"]["labels"] == ["Cardiomegaly"]  # Medical material dropped, Splenomegaly synth-only
    assert section["macro_fvlm16"]["auc"]["value"] == section["per_label"]["Cardiomegaly"]["auc"]["value"]
    assert section["unscored"] == {"Lymphadenopathy": "no organ"}


def _ctclip_find_threshold(probabilities, labels):
    """CT-CLIP's bootstrap_values.find_threshold, loop for loop."""
    best_threshold, best = 0.0, 10000.0
    for threshold in np.linspace(0, 1, 100):
        predicted = probabilities > threshold
        tp, fn = np.sum(predicted & labels), np.sum(~predicted & labels)
        fp, tn = np.sum(predicted & ~labels), np.sum(~predicted & ~labels)
        current = math.sqrt((1 - tp / (tp + fn)) ** 2 + (fp / (fp + tn)) ** 2)
        if current <= best:
            best, best_threshold = current, threshold
    return best_threshold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ctclip_grid_threshold_matches_its_loop(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(80) < 0.3
    scores = np.clip(rng.normal(0.5, 0.15, 80) + 0.2 * labels, 0, 1)
    assert grid_nearest_corner_threshold(labels, scores) == pytest.approx(_ctclip_find_threshold(scores, labels))


def test_weighted_f1_and_strict_threshold_hand_computed():
    labels = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.5, 0.5, 0.2, 0.1, 0.1])
    strict = threshold_metrics(labels, scores, 0.5, strict=True, f1="weighted")
    # score > 0.5: tp 1, fn 1, fp 0, tn 4 -> F1+ = 2/3, F1- = 8/9; weighted (2 * 2/3 + 4 * 8/9) / 6
    assert strict["f1"][0] == pytest.approx((2 * 2 / 3 + 4 * 8 / 9) / 6)
    assert strict["sensitivity"][0] == pytest.approx(0.5) and strict["precision"][0] == pytest.approx(1.0)
    inclusive = threshold_metrics(labels, scores, 0.5)  # score >= 0.5: tp 2, fp 1 -> binary F1 = 4/5
    assert inclusive["f1"][0] == pytest.approx(0.8)
    sklearn = pytest.importorskip("sklearn.metrics")
    assert strict["f1"][0] == pytest.approx(sklearn.f1_score(labels, scores > 0.5, average="weighted"))


def test_protocol_prompts():
    ctclip = load_templates(protocol=get_protocol("ctclip"))
    assert abnormality_prompts(ctclip, "lung_left", "Lung nodule") == (["Lung nodule is present."],
                                                                       ["Lung nodule is not present."])
    fvlm = load_templates(protocol=get_protocol("fvlm"))
    assert abnormality_prompts(fvlm, "heart", "Cardiomegaly") == (["Cardiomegaly."], ["Not Cardiomegaly."])
    default = load_templates(protocol=get_protocol("ctglip"))
    assert abnormality_prompts(default, "lung_left", "nodule")[0][0] == "Left lung with nodule."
    assert ctclip.organ == default.organ  # organ recognition prompts do not change
    with pytest.raises(SetupError, match="ctglip, ctclip, fvlm"):
        get_protocol("chexzero")


def test_header_only_labels_are_refused(tmp_path):
    from stages.zeroshot.reference import read_reference_labels

    for name, header in (("long.csv", "scan_id,organ,abnormality,present\n"), ("wide.csv", "VolumeName,Emphysema\n")):
        path = _write(tmp_path / name, header)
        with pytest.raises(ZeroshotInputError, match="header but no rows") as error:
            read_reference_labels(path, None)
        assert str(path) in str(error.value)


def test_labels_that_match_no_scored_pair_warn(tmp_path):
    from stages.zeroshot.reference import ReferenceLabels
    from stages.zeroshot.report import write_metrics

    predictions, _ = _organ_predictions(n_scans=4)
    labels = pd.DataFrame(dict(scan_id=["s00", "s01"], organ="liver", abnormality="steatosis", present=[True, False]))
    with pytest.warns(UserWarning, match="no \\(scan, organ, abnormality\\) label matches a scored pair"):
        metrics, _ = write_metrics(tmp_path, EvaluationConfig(resamples=10), predictions,
                                   ReferenceLabels(tmp_path / "labels.csv", organ_level=labels), ["heart"],
                                   {"mode": "grounded"})
    assert metrics["abnormality"]["auc_macro"] is None and metrics["abnormality"]["n_labels_unmatched"] == 2
