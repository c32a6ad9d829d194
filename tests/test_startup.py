"""``ctglip --help`` starts at once: the CLI imports no heavy library and changes no environment.

Timings are in ``benchmarks/bench_startup.py``; this only checks what gets imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# totalsegmentator is absent on purpose: `ctglip organs` reads its class map, a plain-data module
# (its heavy parts import torch, which is listed).
HEAVY = ("torch", "monai", "spacy", "torchvision", "sentence_transformers", "transformers", "nibabel", "pandas",
         "scipy", "matplotlib")
WATCHED_ENV = ("OMP_WAIT_POLICY", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _probe(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in WATCHED_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    report = (f"\nimport json, os, sys\nprint(json.dumps({{'modules': sorted(sys.modules), "
              f"'env': {{k: os.environ.get(k) for k in {WATCHED_ENV!r}}}}}))")
    out = subprocess.run([sys.executable, "-c", code + report], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_import_loads_no_heavy_library_and_sets_no_environment():
    probe = _probe("import ctglip_cli.main")
    loaded = {name.split(".")[0] for name in probe["modules"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert probe["env"] == dict.fromkeys(WATCHED_ENV), probe["env"]


def test_help_and_organs_run_without_heavy_imports():
    probe = _probe("import sys\nfrom ctglip_cli.main import app\n"
                   "for args in (['--help'], ['segment', '--help'], ['organs']):\n"
                   "    try:\n        app(args)\n    except SystemExit as stop:\n"
                   "        assert stop.code in (0, None), stop.code")
    loaded = {name.split(".")[0] for name in probe["modules"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_loading_the_text_encoder_changes_no_environment():
    probe = _probe("from stages.common.text_encoder import TextEncoder\nTextEncoder.load()")
    assert probe["env"] == dict.fromkeys(WATCHED_ENV), probe["env"]
