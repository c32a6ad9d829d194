"""The checkpoint file format: progress fields, format-1 files, field-level errors, refused pickles,
temp files of a killed checkpoint write (a real SIGKILL) removed by the next run, a full disk."""
from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stages.common.errors import NoSpaceLeft
from stages.pretrain import load_checkpoint, make_config, run
from stages.pretrain.checkpoint import CheckpointError, read_checkpoint
from test_pretrain_run import FAST

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stopped_run(tiny_cache_dir, tmp_path_factory) -> Path:
    """A run folder whose ``last.pt`` was written after 1 of its steps (a run that did not finish)."""
    root = tmp_path_factory.mktemp("stopped")
    (root / "fast.json").write_text(json.dumps(FAST), encoding="utf-8")
    run(make_config(tiny_cache_dir, root / "run", preset=str(root / "fast.json"), device="cpu", threads=1,
                    stop_after_steps=1))
    return root


def _rewrite(source: Path, target: Path, change) -> Path:
    data = torch.load(source, weights_only=True)
    change(data)
    torch.save(data, target)
    return target


def test_an_unfinished_run_says_so(stopped_run):
    _, checkpoint = load_checkpoint(stopped_run / "run" / "last.pt")
    assert checkpoint.step == 1 and not checkpoint.finished and checkpoint.epochs_done == 0
    assert checkpoint.epochs_planned == FAST["train"]["epochs"] and checkpoint.total_steps > 1
    assert checkpoint.describe_progress() == f"step 1 of {checkpoint.total_steps} (epoch 0 of 2)"


def test_format_1_checkpoints_still_load(stopped_run, tmp_path):
    def to_format_1(data):
        data["format"], data["epoch"] = "ctglip.checkpoint/1", data.pop("epochs_done")
        for key in ("total_steps", "epochs_planned", "finished"):
            del data[key]

    old = _rewrite(stopped_run / "run" / "last.pt", tmp_path / "old.pt", to_format_1)
    model, checkpoint = load_checkpoint(old)
    assert checkpoint.step == 1 and checkpoint.total_steps is None and not checkpoint.finished
    assert checkpoint.epochs_planned == 2 and checkpoint.config.mode == "grounded" and not model.training

    finished = _rewrite(old, tmp_path / "old_final.pt", lambda data: data.update(epoch=2))
    assert load_checkpoint(finished)[1].finished


def _rename_vocab(data):
    data["config"]["organs"] = data["config"].pop("organ_vocab")


@pytest.mark.parametrize(("change", "message"), [
    (_rename_vocab, "missing field config.organ_vocab; unknown field config.organs"),
    (lambda data: data.pop("step"), "missing field step"),
    (lambda data: data["config"]["cache"].pop("preprocess"), "missing field config.cache.preprocess"),
    (lambda data: data["config"]["cache"]["preprocess"].update(windw=[0, 1]), "config.cache.preprocess does not fit"),
    (lambda data: data["config"]["text_encoder"].pop("dim"), "field config.text_encoder.dim is missing"),
    (lambda data: data["config"]["model"].pop("embed_dim"), "config.model does not fit .*embed_dim"),
])
def test_a_renamed_or_missing_field_names_the_file_and_the_field(stopped_run, tmp_path, change, message):
    broken = _rewrite(stopped_run / "run" / "last.pt", tmp_path / "broken.pt", change)
    with pytest.raises(CheckpointError, match=f"broken.pt: .*{message}"):
        load_checkpoint(broken)


def test_pickled_objects_are_refused_without_suggesting_to_allow_them(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"format": "ctglip.checkpoint/2", "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: refused") and "argparse.Namespace" in message
    assert "only loads its own weights-only checkpoints" in message
    assert "weights_only=False" not in message and "succeed" not in message


_KILLED_WRITER = """
import sys, time, torch
from pathlib import Path
from stages.common.atomic import atomic_path
with atomic_path(Path(sys.argv[1])) as temp:
    torch.save({"weights": torch.zeros(1000)}, temp)
    print("written", flush=True)
    time.sleep(60)
"""


def test_temp_files_of_a_killed_checkpoint_write_are_removed_by_the_next_run(stopped_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run / "run", run_dir)
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(run_dir / "last.pt")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.stdout.readline().strip() == "written"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    leftovers = list(run_dir.glob(".last.pt.*.pt"))
    assert len(leftovers) == 1 and read_checkpoint(run_dir / "last.pt").step == 1  # the old file is intact
    run(make_config(read_checkpoint(run_dir / "last.pt").config.cache.path, run_dir,
                    preset=str(stopped_run / "fast.json"), device="cpu", threads=1, resume=True, stop_after_steps=2))
    assert not list(run_dir.glob(".last.pt.*")) and read_checkpoint(run_dir / "last.pt").step == 2


def test_a_full_disk_while_checkpointing_stops_with_the_file_named_and_resumes(stopped_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run / "run", run_dir)
    real_save, calls = torch.save, []

    def save_until_the_disk_is_full(data, target, *args, **kwargs):
        calls.append(target)
        if len(calls) == 2:  # the second checkpoint write runs out of space half-way
            Path(target).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(data, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    config = dict(preset=str(stopped_run / "fast.json"), device="cpu", threads=1, resume=True)
    cache_dir = read_checkpoint(run_dir / "last.pt").config.cache.path
    with pytest.raises(NoSpaceLeft, match=f"no space left writing {run_dir / 'last.pt'}"):
        run(make_config(cache_dir, run_dir, **config))
    assert read_checkpoint(run_dir / "last.pt").step == 2  # the write that failed left the previous one
    assert not list(run_dir.glob(".last.pt.*")), "temp file of the failed write left behind"
    monkeypatch.undo()
    assert run(make_config(cache_dir, run_dir, **config)).completed
    assert read_checkpoint(run_dir / "final.pt").finished
