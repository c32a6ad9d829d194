"""The demo script itself, at DEMO_SIZE=ci: every step a real ``ctglip`` subcommand in its own process,
so a change that breaks a file contract between two stages fails here even if each stage's own tests pass."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from stages.common.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_every_stage_and_writes_the_results_table(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "DEMO_SIZE": "ci", "DEMO_DIR": str(out), "WORKERS": "1", "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", str(ROOT / "examples" / "demo.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    for folder, stage in [("train", "synth"), ("test", "synth"), ("train/segmentations", "segment"),
                          ("test/segmentations", "segment"), ("train/parsed", "parse-reports"),
                          ("train/cache", "cache"), ("runs/grounded-cnn", "pretrain"), ("runs/global-cnn", "pretrain"),
                          ("zeroshot/grounded-cnn", "zeroshot"), ("zeroshot/global-cnn", "zeroshot")]:
        manifest = read_manifest(out / folder, stage)  # validates the schema and the stage name
        assert manifest["items"], f"{folder}: no items"
        assert all(item["status"] in ("ok", "done-earlier", "empty") for item in manifest["items"].values()), folder
    for mode in ("grounded", "global"):
        metrics = json.loads((out / "zeroshot" / f"{mode}-cnn" / "metrics.json").read_text())
        assert metrics["mode"] == mode and metrics["n_scans"] == 3 and metrics["n_scans_failed"] == 0
        assert 0.0 <= metrics["abnormality"]["auc_macro"] <= 1.0
        assert 0.0 <= metrics["organ_recognition"]["top1"] <= 1.0
    results = (out / "results.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith(("| grounded", "| global"))]
    assert len(rows) == 2 and all(line.count("[") == 3 for line in rows), results

    # the global-retrieval ceiling script reads the same cache and labels contract
    ceiling = subprocess.run([sys.executable, str(ROOT / "examples" / "global_retrieval_ceiling.py"),
                              "--cache", str(out / "train" / "cache"), "--labels", str(out / "train" / "labels.csv"),
                              "--val-fraction", "0.34", "--seeds", "0"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert ceiling.returncode == 0, ceiling.stderr[-3000:]
    assert ceiling.stdout.startswith("seed 0: 2 validation reports, oracle recall@1 "), ceiling.stdout

    # the data-size curve reuses finished runs: here the demo's own, as its one size point
    point = out / "size" / "n6"
    point.mkdir(parents=True)
    for mode in ("grounded", "global"):
        (point / f"{mode}-cnn-seed0").symlink_to((out / "runs" / f"{mode}-cnn").resolve())
        (point / f"zeroshot-{mode}-cnn-seed0").symlink_to((out / "zeroshot" / f"{mode}-cnn").resolve())
    curve = subprocess.run([sys.executable, str(ROOT / "examples" / "data_size_curve.py"), "--cache",
                            f"6={out / 'train' / 'cache'}", "--test", str(out / "test"), "--out", str(out / "size")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert curve.returncode == 0, curve.stderr[-3000:]
    assert (out / "size" / "data_size_curve.png").stat().st_size > 1000
    metrics = json.loads((out / "zeroshot" / "grounded-cnn" / "metrics.json").read_text())
    assert f"| 6 | {metrics['abnormality']['macro']['auc']['value']:.3f} [" in curve.stdout, curve.stdout

    # the text- and image-side ceilings read the cache, the labels and a global checkpoint's projection
    ceilings = subprocess.run([sys.executable, str(ROOT / "examples" / "global_ceilings.py"), "--cache",
                               str(out / "train" / "cache"), "--labels", str(out / "train" / "labels.csv"),
                               "--checkpoint", str(out / "runs" / "global-cnn" / "final.pt"), "--out",
                               str(out / "ceilings")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ceilings.returncode == 0, ceilings.stderr[-3000:]
    table = (out / "ceilings" / "ceilings.md").read_text()
    findings = {line.split(",")[1] + " / " + line.split(",")[2]
                for line in (out / "train" / "labels.csv").read_text().splitlines()[1:]}
    assert all(f"| {finding} |" in table for finding in findings) and "| macro /  |" in table, table
    assert "global text ceiling, global projection" in table.splitlines()[2]
    assert (out / "ceilings" / "ceilings.png").stat().st_size > 1000


def test_text_ceiling_orders_texts_by_the_prompt_direction_and_the_probe_finds_a_density_shift():
    sys.path.insert(0, str(ROOT / "examples"))
    from global_ceilings import probe_auc, text_scores

    direction = np.array([1.0, -1.0, 0.0])
    texts = np.array([[0.9, 0.1, 0.3], [0.1, 0.9, 0.3], [0.6, 0.4, 0.3]])
    assert np.argsort(text_scores(texts, direction)).tolist() == [1, 2, 0]
    rng = np.random.default_rng(0)
    present = rng.integers(0, 2, size=200).astype(float)
    histograms = rng.normal(size=(200, 8))
    histograms[:, 3] += 1.5 * present  # the finding moves one bin
    assert probe_auc(histograms, present) > 0.8
    assert abs(probe_auc(rng.normal(size=(200, 8)), present) - 0.5) < 0.15


def test_ceiling_oracle_finds_reports_that_follow_the_findings_and_not_wording_noise():
    sys.path.insert(0, str(ROOT / "examples"))
    from global_retrieval_ceiling import oracle_recall

    rng = np.random.default_rng(0)
    findings = rng.integers(0, 2, size=(400, 12)).astype(float)
    is_val = np.zeros(400, dtype=bool)
    is_val[::10] = True
    follows = findings @ rng.normal(size=(12, 32)) + 0.01 * rng.normal(size=(400, 32))
    wording = rng.normal(size=(400, 32))
    assert oracle_recall(findings, follows, is_val, ridge=1.0) > 0.5  # ties only between identical label rows
    assert oracle_recall(findings, wording, is_val, ridge=1.0) < 0.2  # chance is 1/40
