"""`ctglip synth --layout ctrate` and the whole chain run from that raw layout with no conversion by
hand: ingest (metadata) -> segment (import) -> parse-reports -> cache -> pretrain -> zeroshot."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctglip_cli.main import app
from stages.common.hu_check import problems, hu_stats
from stages.synth import ctrate

SIZE = ["--shape", "64,64,64", "--spacing", "3.5,3.5,3.5"]


def _ok(result) -> None:
    assert result.exit_code == 0, result.output[-3000:]


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ctrate") / "synth"
    _ok(CliRunner().invoke(app, ["synth", "-o", str(root), "--n-scans", "6", "--seed", "4", "--prevalence", "0.4",
                                 "--layout", "ctrate", "--no-preview", *SIZE]))
    return root


def test_layout_is_shaped_like_ctrate(layout: Path) -> None:
    dataset = layout / "dataset"
    volumes = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.nii.gz"))
    assert volumes[0] == "train/train_1/train_1_a/train_1_a_1.nii.gz" and len(volumes) == 6
    reports = pd.read_csv(dataset / ctrate.REPORTS_CSV)
    assert list(reports.columns) == ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN",
                                     "Impressions_EN"]
    labels = pd.read_csv(dataset / ctrate.LABELS_CSV)
    assert labels.columns[0] == "VolumeName" and {"Lung nodule", "Emphysema", "Cardiomegaly",
                                                  "Arterial wall calcification"} <= set(labels.columns)
    truth = pd.read_csv(layout / "labels.csv")
    lungs = truth[(truth.abnormality == "emphysema") & truth.present.astype(bool)].scan_id.unique()
    flagged = labels[labels["Emphysema"] == 1].VolumeName.str.replace(".nii.gz", "", regex=False)
    assert sorted(flagged) == sorted(lungs)
    metadata = pd.read_csv(dataset / ctrate.METADATA_CSV)
    assert metadata.loc[0, "XYSpacing"] == "[3.5, 3.5]" and metadata.loc[0, "RescaleIntercept"] == -1024
    stored = nib.load(dataset / "train/train_1/train_1_a/train_1_a_1.nii.gz")
    assert problems(hu_stats(np.asanyarray(stored.dataobj)))  # v1-style: not HU until the metadata is applied
    assert np.allclose(stored.header.get_zooms(), 1.0)


def test_pipeline_from_the_raw_layout(layout: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    dataset, work = layout / "dataset", tmp_path
    ct_dir = work / "ct"
    _ok(runner.invoke(app, ["ingest", str(dataset / "train"), "-o", str(ct_dir),
                            "--metadata", str(dataset / ctrate.METADATA_CSV), "--workers", "2"]))
    for truth_path in sorted((layout / "ct").glob("*.nii.gz")):
        ingested, truth = nib.load(ct_dir / truth_path.name), nib.load(truth_path)
        assert np.array_equal(np.asanyarray(ingested.dataobj), np.asanyarray(truth.dataobj))  # HU, exactly
        assert np.allclose(ingested.affine, truth.affine)
    _ok(runner.invoke(app, ["segment", str(ct_dir), "-o", str(work / "masks"), "--engine", "import",
                            "--from", str(layout / "masks")]))
    _ok(runner.invoke(app, ["parse-reports", str(dataset / ctrate.REPORTS_CSV), "-o", str(work / "parsed")]))
    _ok(runner.invoke(app, ["cache", "--ct-dir", str(ct_dir), "--masks-dir", str(work / "masks"),
                            "--reports-dir", str(work / "parsed"), "-o", str(work / "cache"),
                            "--spacing", "3.5", "3.5", "3.5", "--crop-size", "32", "--volume-size", "32"]))
    _ok(runner.invoke(app, ["pretrain", str(work / "cache"), "-o", str(work / "run"), "--epochs", "1",
                            "--batch-size", "8", "--device", "cpu", "--threads", "1"]))
    checkpoint = work / "run" / "final.pt"
    _ok(runner.invoke(app, ["zeroshot", str(checkpoint), "--ct-dir", str(ct_dir), "--masks-dir", str(work / "masks"),
                            "-o", str(work / "zeroshot"), "--labels", str(layout / "labels.csv"),
                            "--abnormalities", str(layout / "abnormalities.json"), "--resamples", "50",
                            "--device", "cpu"]))
    metrics = json.loads((work / "zeroshot" / "metrics.json").read_text())
    assert metrics["n_scans"] == 6 and metrics["n_scans_failed"] == 0
    assert metrics["abnormality"]["n_labels_matched"] > 0
    # CT-RATE's wide scan-level labels, as shipped: per-label AUCs agree with the organ-level ones
    _ok(runner.invoke(app, ["zeroshot", str(checkpoint), "--ct-dir", str(ct_dir), "--masks-dir", str(work / "masks"),
                            "-o", str(work / "zeroshot_wide"), "--labels", str(dataset / ctrate.LABELS_CSV),
                            "--resamples", "50", "--device", "cpu"]))
    wide = json.loads((work / "zeroshot_wide" / "metrics.json").read_text())["scan_labels"]["per_label"]
    organ_level = metrics["abnormality"]["per_abnormality"]
    single_organ = {"Cardiomegaly": "heart/cardiomegaly", "Pericardial effusion": "heart/pericardial effusion",
                    "Arterial wall calcification": "aorta/calcification", "Hepatic steatosis": "liver/steatosis",
                    "Liver hypodense lesion": "liver/hypodense lesion", "Splenomegaly": "spleen/splenomegaly",
                    "Gallstone": "gallbladder/gallstone"}
    compared = 0
    for label, key in single_organ.items():
        scan_auc, organ_auc = wide[label]["auc"]["value"], organ_level.get(key, {}).get("auc", {}).get("value")
        if scan_auc is not None and organ_auc is not None:
            assert scan_auc == pytest.approx(organ_auc, abs=1e-9), label  # one organ: the same scores and truth
            compared += 1
    assert compared >= 2
