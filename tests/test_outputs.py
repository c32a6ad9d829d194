"""Claiming output folders: foreign folders refused, one writer at a time, atomic --overwrite."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stages.common.errors import SetupError
from stages.common.outputs import STAGE_MARKER, check_output_folder, claim_output, folder_stage, lock_path

ROOT = Path(__file__).resolve().parents[1]


def test_absent_empty_or_own_folders_are_claimed(tmp_path):
    for folder in (tmp_path / "new" / "nested", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        with claim_output(folder, "cache") as claimed:
            assert claimed == folder.absolute() and lock_path(folder).is_file()
            (claimed / "index.parquet").write_text("x")
        assert folder_stage(folder) == "cache" and not lock_path(folder).exists()
        with claim_output(folder, "cache") as claimed:  # resume: nothing removed
            assert (claimed / "index.parquet").read_text() == "x"


def test_foreign_and_other_stage_folders_are_refused_and_kept(tmp_path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(SetupError, match=r"home: holds files `ctglip cache` did not write \(thesis.docx\)"):
            with claim_output(foreign, "cache", overwrite=overwrite):
                pass
    assert (foreign / "thesis.docx").read_text() == "years of work"
    masks = tmp_path / "masks"
    with claim_output(masks, "segment"):
        pass
    with pytest.raises(SetupError, match="holds the output of `ctglip segment`, not of `ctglip cache`"):
        with claim_output(masks, "cache", overwrite=True):
            pass
    old = tmp_path / "old_parse"  # a folder written before markers existed: its manifest names the stage
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"stage": "parse-reports"}))
    with pytest.raises(SetupError, match="`ctglip parse-reports`"):
        with claim_output(old, "zeroshot"):
            pass
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(SetupError, match="not a folder"):
        with claim_output(a_file, "cache"):
            pass


def test_a_folder_that_cannot_be_created_is_refused_before_any_work(tmp_path):
    """A file where a parent folder should be (or an unwritable parent) is a setup error naming the folder, found by
    the early check every stage runs before its work, not a crash when the outputs are written."""
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(SetupError, match=r"out: cannot be created in .*file \(not a writable folder\)"):
        check_output_folder(a_file / "sub" / "out", "cache")
    with pytest.raises(SetupError, match=r"out: cannot be created in .*file"):
        with claim_output(a_file / "sub" / "out", "cache"):
            pass


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    folder = tmp_path / "cache"
    with claim_output(folder, "cache"):
        with pytest.raises(SetupError, match=rf"in use by `ctglip cache` \(pid {os.getpid()} on "):
            with claim_output(folder, "cache"):
                pass
        with claim_output(folder, "cache", lock_name="shard-2of2"):
            pass  # shards of one job lock separately
    assert not lock_path(folder).exists()


def _killed_child(script: str) -> None:
    """Run ``script`` in a child process that is killed with SIGKILL (kill -9) where it says so."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=ROOT)
    assert done.returncode == -signal.SIGKILL


def test_killed_overwrite_never_leaves_the_old_manifest_beside_new_outputs(tmp_path, caplog):
    folder = tmp_path / "cache"
    with claim_output(folder, "cache") as claimed:
        (claimed / "manifest.json").write_text(json.dumps({"stage": "cache", "window": "old"}))
        (claimed / "shard_old").write_text("old")
    _killed_child(f"""
        import os, signal
        from stages.common.outputs import claim_output
        with claim_output({str(folder)!r}, "cache", overwrite=True) as out:
            (out / "shard_new").write_text("new")
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert sorted(p.name for p in folder.iterdir()) == [STAGE_MARKER, "shard_new"]  # no old manifest
    asides = list(tmp_path.glob(".cache.ctglip-replaced-*"))
    assert len(asides) == 1 and (asides[0] / "manifest.json").is_file()
    assert lock_path(folder).is_file()  # the dead writer's lock
    with caplog.at_level("WARNING", logger="ctglip.outputs"), claim_output(folder, "cache") as claimed:
        assert (claimed / "shard_new").read_text() == "new"  # resumed, not wiped
    assert "no longer running" in caplog.text and "interrupted --overwrite" in caplog.text
    assert not list(tmp_path.glob(".cache.ctglip-replaced-*")) and not lock_path(folder).exists()


def test_finished_overwrite_replaces_everything(tmp_path):
    folder = tmp_path / "cache"
    with claim_output(folder, "cache") as claimed:
        (claimed / "manifest.json").write_text(json.dumps({"stage": "cache"}))
        (claimed / "stale").write_text("old")
    with claim_output(folder, "cache", overwrite=True) as claimed:
        assert not (claimed / "stale").exists()
        (claimed / "fresh").write_text("new")
    assert sorted(p.name for p in folder.iterdir()) == [STAGE_MARKER, "fresh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_live_lock_from_another_host_is_never_taken_over(tmp_path):
    folder = tmp_path / "cache"
    lock_path(folder).write_text(json.dumps({"stage": "cache", "pid": 1, "host": "other-node",
                                             "started": "2026-01-01T00:00:00"}))
    with pytest.raises(SetupError, match="pid 1 on other-node.*delete this lock file"):
        with claim_output(folder, "cache"):
            pass
