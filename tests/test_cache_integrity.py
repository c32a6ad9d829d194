"""A cache that is not what its manifest says is refused: a ``cache --overwrite`` killed midway (a real
SIGKILL), a shard from another config, a truncated array; ``pretrain`` then refuses to train on it. Two
``cache`` runs into one folder never both succeed."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctglip_cli.main import app
from stages.cache import WINDOW_PRESETS, CacheConfig, PreprocessConfig, load_cache
from stages.cache import run as run_cache
from stages.common.manifest import ManifestError

REPO = Path(__file__).resolve().parents[1]
CLI = "from ctglip_cli.main import app; app()"
PREPROCESS = PreprocessConfig(spacing=(3.5, 3.5, 3.5), crop_size=(32, 32, 32), volume_size=(32, 32, 32))


def _cache_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["cache", "--ct-dir", str(root / "ct"), "--masks-dir", str(root / "segmentations"), "--reports-dir",
            str(root / "parsed"), "-o", str(out), "--spacing", "3.5", "3.5", "3.5", "--crop-size", "32",
            "--volume-size", "32", *extra]


def _new_shards(cache: Path, old_hash: str) -> int:
    count = 0
    for meta in (cache / "shards").glob("*/samples.json"):
        try:
            count += json.loads(meta.read_text())["content_hash"] != old_hash
        except (OSError, ValueError, KeyError):
            pass
    return count


def test_a_killed_overwrite_leaves_a_cache_that_pretrain_refuses(tiny_pipeline_dir, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_pipeline_dir / "cache", cache)
    old_hash = json.loads((cache / "manifest.json").read_text())["content_hash"]
    command = [sys.executable, "-c", CLI,
               *_cache_args(tiny_pipeline_dir, cache, "--overwrite", "--window-preset", "abdomen")]
    writer = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 300
    while _new_shards(cache, old_hash) < 2 and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    new = _new_shards(cache, old_hash)
    assert 2 <= new < 10, f"the kill came too late or too early ({new} new shards)"
    with pytest.raises(ManifestError, match="incomplete cache: a `ctglip cache` run into it did not finish"):
        load_cache(cache)
    refused = CliRunner().invoke(app, ["pretrain", str(cache), "-o", str(tmp_path / "run"), "--device", "cpu"])
    assert refused.exit_code == 2 and "incomplete cache" in " ".join(refused.output.split()), refused.output
    assert not (tmp_path / "run" / "last.pt").exists()
    # rerunning the same command completes it, with the new window throughout
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert finished.returncode == 0, finished.stderr
    rebuilt = load_cache(cache)
    assert rebuilt.preprocess.window == (-160.0, 240.0) and _new_shards(cache, old_hash) == 10


def test_a_shard_from_another_config_is_refused(tiny_pipeline_dir, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_pipeline_dir / "cache", cache)
    ct_dir = tmp_path / "one_ct"
    ct_dir.mkdir()
    scan = sorted((tiny_pipeline_dir / "ct").glob("*.nii.gz"))[0]
    shutil.copy(scan, ct_dir / scan.name)
    other = run_cache(CacheConfig(ct_dir=ct_dir, masks_dir=tiny_pipeline_dir / "segmentations",
                                  reports_dir=tiny_pipeline_dir / "parsed", out_dir=tmp_path / "other",
                                  preprocess=PreprocessConfig(spacing=(3.5, 3.5, 3.5), crop_size=(32, 32, 32),
                                                              volume_size=(32, 32, 32), window=(-160.0, 240.0))))
    assert other.exit_code == 0
    scan_id = scan.name[: -len(".nii.gz")]
    shutil.rmtree(cache / "shards" / scan_id)
    shutil.copytree(tmp_path / "other" / "shards" / scan_id, cache / "shards" / scan_id)
    with pytest.raises(ManifestError, match=f"shards/{scan_id}: shard made with another cache config.*--overwrite"):
        load_cache(cache)


@pytest.mark.parametrize("name", ["images.npy", "volume.npy"])
def test_a_truncated_array_is_named_with_the_command_that_fixes_it(tiny_pipeline_dir, tmp_path, name):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_pipeline_dir / "cache", cache)
    target = sorted((cache / "shards").glob(f"*/{name}"))[3]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    kind = "organ" if name == "images.npy" else "volume"
    with pytest.raises(ManifestError) as error:
        load_cache(cache, kind=kind)
    message = str(error.value)
    assert message.startswith(f"{target}: unreadable or truncated") and "ctglip cache" in message
    assert "--overwrite" in message


def test_two_cache_runs_with_different_configs_into_one_folder_never_both_succeed(tiny_pipeline_dir, tmp_path):
    cache = tmp_path / "cache"
    presets = ("abdomen", "lung")
    runs = [subprocess.Popen([sys.executable, "-c", CLI, *_cache_args(tiny_pipeline_dir, cache, "--window-preset",
                                                                    preset)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}) for preset in presets]
    outcomes = [(writer.wait(timeout=600), " ".join(writer.stderr.read().split())) for writer in runs]
    codes = [code for code, _ in outcomes]
    assert sorted(codes) == [0, 2], outcomes
    winner, loser = codes.index(0), codes.index(2)
    assert "is in use by" in outcomes[loser][1] or "another config" in outcomes[loser][1], outcomes[loser][1]
    assert load_cache(cache).preprocess.window == WINDOW_PRESETS[presets[winner]]
