"""Zero-shot prompts, file formats and plots (no model needed)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages.common.labels import LabelsError
from stages.zeroshot.io import (ZeroshotInputError, read_embeddings, read_label_space, read_labels,
                                read_metrics, read_predictions, write_embeddings, write_metrics,
                                write_predictions)
from stages.zeroshot.plots import (confusion_matrix, forest_series, plot_confusion_organs, plot_forest,
                                   plot_roc_abnormalities, plot_roc_scan_labels)
from stages.zeroshot.prompts import PromptError, abnormality_prompts, load_templates, organ_prompts


def test_default_templates_fill_display_names():
    templates = load_templates()
    assert templates.source == "default" and templates.version == "1"
    prompts = organ_prompts(templates, "kidney_left")
    assert "left kidney" in prompts and "A computed tomography of the left kidney." in prompts
    positive, negative = abnormality_prompts(templates, "kidney_left", "cyst")
    assert "Left kidney with cyst." in positive  # the text the cache trains on
    assert "Left kidney shows no significant abnormality." in negative
    assert "Left kidney without cyst." in negative
    assert all("{" not in p for p in positive + negative)


def test_user_prompt_file_replaces_given_ensembles(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text("abnormality_positive:\n  - '{Abnormality} is present in the {organ}.'\n")
    templates = load_templates(path)
    assert templates.abnormality_positive == ("{Abnormality} is present in the {organ}.",)
    assert templates.organ == load_templates().organ
    assert templates.source == str(path)
    positive, _ = abnormality_prompts(templates, "liver", "steatosis")
    assert positive == ["Steatosis is present in the liver."]
    json_path = tmp_path / "prompts.json"
    json_path.write_text(json.dumps({"organ": ["{organ} on CT"]}))
    assert organ_prompts(load_templates(json_path), "spleen") == ["spleen on CT"]


@pytest.mark.parametrize("content, message", [
    ("organ: ['{organ} {colour}']\n", "unknown placeholder"),
    ("organ: ['A scan.']\n", "does not name the organ"),
    ("organ: []\n", "non-empty list"),
    ("templates: ['{organ}']\n", "unknown key"),
    ("organ: ['{organ']\n", "malformed"),
    ("- just a list\n", "expected a mapping"),
    ("organ: [unclosed\n", "not valid YAML"),
])
def test_bad_prompt_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(PromptError, match=message) as error:
        load_templates(path)
    assert str(path) in str(error.value)


def test_read_labels(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("scan_id,organ,abnormality,present\nsynth_001,liver,steatosis,1\n"
                    "synth_001,kidney_left,cyst,false\n")
    labels = read_labels(path)
    assert labels["present"].tolist() == [True, False]
    assert labels["scan_id"].tolist() == ["synth_001", "synth_001"]


@pytest.mark.parametrize("content, message", [
    ("scan_id,organ,present\na,liver,1\n", "missing \\['abnormality'\\]"),
    ("scan_id,organ,abnormality,present\na,liver,cyst,maybe\n", "line 2"),
    ("scan_id,organ,abnormality,present\na,liver,cyst,1\na,liver,cyst,0\n", "given twice"),
    ("", "cannot read labels"),
])
def test_bad_labels_name_the_file(tmp_path, content, message):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(LabelsError, match=message) as error:
        read_labels(path)
    assert str(path) in str(error.value)


def test_read_label_space_shapes(tmp_path):
    expected = {"kidney_left": ["cyst", "stone"], "liver": ["steatosis"]}
    shapes = {
        "lists.json": {"liver": ["steatosis"], "kidney_left": ["stone", "cyst"]},
        "counts.json": {"liver": {"steatosis": 3}, "kidney_left": {"cyst": 1, "stone": 2}, "_comment": "x"},
        "wrapped.json": {"version": 1, "abnormalities": {"liver": ["steatosis"], "kidney_left": ["cyst", "stone"]}},
        "records.json": [{"organ": "liver", "abnormality": "steatosis"}, {"organ": "kidney_left", "abnormality": "cyst"},
                         {"organ": "kidney_left", "abnormality": "stone"}],
    }
    for name, content in shapes.items():
        (tmp_path / name).write_text(json.dumps(content))
        assert read_label_space(tmp_path / name) == expected, name
    (tmp_path / "space.yaml").write_text("liver: [steatosis]\nkidney_left: [cyst, stone]\n")
    assert read_label_space(tmp_path / "space.yaml") == expected


def test_read_label_space_rejects_unknown_organ(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"livr": ["steatosis"]}))
    with pytest.raises(ZeroshotInputError, match="'livr' is not an organ unit"):
        read_label_space(path)


def test_predictions_metrics_embeddings_round_trip(tmp_path):
    predictions = pd.DataFrame([
        dict(scan_id="a", organ="liver", task="organ_recognition", label="liver", score=0.9,
             predicted_organ="liver", rank=1, complete=True),
        dict(scan_id="a", organ="liver", task="abnormality", label="steatosis", score=0.25,
             predicted_organ=None, rank=pd.NA, complete=False),
    ])
    write_predictions(tmp_path / "predictions.csv", predictions)
    back = read_predictions(tmp_path / "predictions.csv")
    assert back["rank"].tolist()[0] == 1 and pd.isna(back["rank"].tolist()[1])
    assert back["complete"].tolist() == [True, False]
    write_metrics(tmp_path / "metrics.json", {"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(3)]})
    assert read_metrics(tmp_path / "metrics.json") == {"a": None, "b": 0.5, "c": [3]}
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    index = pd.DataFrame(dict(scan_id=["a", "a", "b"], organ=["liver", "spleen", "liver"],
                              complete=[True, True, False], volume_ml=[1500.0, 200.0, 1400.0],
                              source=["organ"] * 3))
    write_embeddings(tmp_path, vectors, index)
    loaded, loaded_index = read_embeddings(tmp_path)
    np.testing.assert_array_equal(loaded, vectors)
    assert loaded_index["row"].tolist() == [0, 1, 2] and loaded_index["organ"].tolist()[1] == "spleen"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_plots_are_written(tmp_path):
    recognition = pd.DataFrame(dict(organ=["liver", "liver", "spleen"], predicted_organ=["liver", "spleen", "spleen"]))
    counts, rows, columns = confusion_matrix(recognition, ["heart", "liver", "spleen"])
    np.testing.assert_array_equal(counts, [[0, 1, 1], [0, 0, 1]])
    assert rows == ["liver", "spleen"] and columns == ["heart", "liver", "spleen"]
    confusion = plot_confusion_organs(recognition, ["heart", "liver", "spleen"], tmp_path / "confusion_organs.png")
    rng = np.random.default_rng(1)
    present = rng.random(50) < 0.5
    evaluated = pd.DataFrame(dict(organ="liver", abnormality="steatosis", present=present,
                                  score=rng.random(50) + present, threshold=0.9))
    roc = plot_roc_abnormalities(evaluated, {"liver/steatosis": {"auc": {"value": 0.8}}}, tmp_path / "roc.png")
    for path in (confusion, roc):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 200


def test_roc_small_multiples_and_forest_plot(tmp_path):
    """One panel per finding (19 findings -> a 5 x 4 grid), and a forest plot of two runs."""
    rng = np.random.default_rng(2)
    frames, per_key = [], {}
    for i in range(19):
        present = rng.random(40) < 0.3
        frames.append(pd.DataFrame(dict(label=f"finding {i:02d}", present=present, score=rng.random(40) + present,
                                        threshold=0.8)))
        per_key[f"finding {i:02d}"] = {"auc": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8}}
    grid = plot_roc_scan_labels(pd.concat(frames), per_key, tmp_path / "roc.png")
    with Image.open(grid) as image:
        width, height = image.size
    assert width > 1000 and 0.7 < height / width < 1.2  # 5 columns x 4 rows of square panels
    metrics = {"scan_labels": {"per_label": {k: {"auc": v["auc"]} for k, v in per_key.items()},
                               "macro": {"auc": {"value": 0.7, "ci_low": 0.65, "ci_high": 0.75}}}}
    other = {"abnormality": {"per_abnormality": {"liver/steatosis": {"auc": {"value": None, "ci_low": None,
                                                                             "ci_high": None}}},
                             "macro": {"auc": {"value": None, "ci_low": None, "ci_high": None}}}}
    series = [forest_series(metrics, "grounded"), forest_series(other, "global")]
    assert series[0].per_finding["finding 03"]["value"] == 0.7 and series[1].macro["value"] is None
    forest = plot_forest(series, tmp_path / "forest.png")
    with Image.open(forest) as image:
        assert image.format == "PNG" and image.size[1] > image.size[0]  # one row per finding
    with pytest.raises(ValueError, match="no 'scan_labels' section"):
        forest_series(other, "global", "scan_labels")
