"""The folder rules as users meet them through the CLI: foreign and other-stage folders, a second writer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ctglip_cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def _said(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _cache_args(root: Path, out: Path) -> list[str]:
    return ["cache", "--ct-dir", str(root / "ct"), "--masks-dir", str(root / "segmentations"),
            "--reports-dir", str(root / "parsed"), "-o", str(out), "--spacing", "3.5", "3.5", "3.5",
            "--crop-size", "32", "--volume-size", "32"]


def test_foreign_and_other_stage_folders_exit_2_and_stay_untouched(tiny_pipeline_dir, tmp_path):
    root, runner = tiny_pipeline_dir, CliRunner()
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    segment = runner.invoke(app, ["segment", str(root / "ct"), "-o", str(home), "--engine", "import",
                                  "--from", str(root / "masks"), "--overwrite"])
    assert segment.exit_code == 2 and "did not write (notes.txt)" in _said(segment)
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    before = sorted(p.name for p in (root / "segmentations").iterdir())
    cache = runner.invoke(app, _cache_args(root, root / "segmentations"))
    assert cache.exit_code == 2 and "holds the output of `ctglip segment`, not of `ctglip cache`" in _said(cache)
    assert sorted(p.name for p in (root / "segmentations").iterdir()) == before
    pretrain = runner.invoke(app, ["pretrain", str(root / "cache"), "-o", str(root / "cache"), "--device", "cpu"])
    assert pretrain.exit_code == 2 and "holds the output of `ctglip cache`" in _said(pretrain)


def test_a_second_cache_run_on_a_folder_in_use_exits_2(tiny_pipeline_dir, tmp_path):
    out = tmp_path / "cache"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom stages.common.outputs import claim_output\n"
         f"with claim_output({str(out)!r}, 'cache'):\n    print('held', flush=True)\n    sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        second = CliRunner().invoke(app, _cache_args(tiny_pipeline_dir, out))
        assert second.exit_code == 2, second.output
        assert f"in use by `ctglip cache` (pid {holder.pid} on" in _said(second)
        assert sorted(p.name for p in out.iterdir()) == [".ctglip-stage"]
    finally:
        holder.kill()
        holder.wait()
