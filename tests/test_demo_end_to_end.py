"""The demo script itself, at DEMO_SIZE=ci: every step a real ``ctglip`` subcommand in its own process,
so a change that breaks a file contract between two stages fails here even if each stage's own tests pass."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
        assert all(item["status"] in ("ok", "skipped") for item in manifest["items"].values()), folder
    for mode in ("grounded", "global"):
        metrics = json.loads((out / "zeroshot" / f"{mode}-cnn" / "metrics.json").read_text())
        assert metrics["mode"] == mode and metrics["n_scans"] == 3 and metrics["n_scans_failed"] == 0
        assert 0.0 <= metrics["abnormality"]["auc_macro"] <= 1.0
        assert 0.0 <= metrics["organ_recognition"]["top1"] <= 1.0
    results = (out / "results.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith(("| grounded", "| global"))]
    assert len(rows) == 2 and all(line.count("[") == 3 for line in rows), results
