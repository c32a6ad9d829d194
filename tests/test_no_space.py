"""A full disk: every writer says "no space left writing FILE" (exit 2) and leaves no temp file.

The first test injects ENOSPC into the OS write; the others fill a real 1-2 MiB tmpfs
(skipped where mounting one is not allowed, e.g. without root).
"""
from __future__ import annotations

import errno
import json
import pathlib
import shutil
import subprocess
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ctglip_cli.main import app
from stages.common.atomic import atomic_path, write_json_atomic
from stages.common.errors import NoSpaceLeft
from stages.synth import SynthConfig
from stages.synth import run as run_synth


def test_injected_enospc_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"version": "old"})
    real_write = pathlib.Path.write_text

    def half_then_full(self, text, *args, **kwargs):
        real_write(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_full)
    with pytest.raises(NoSpaceLeft, match=rf"^no space left writing {target}; free some space"):
        write_json_atomic(target, {"version": "new"})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted in tmp_path (needs root; skipped otherwise)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_bytes: int) -> Path:
    """Take all but ``leave_bytes`` of the disk with one file (removed to free the space)."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


WRITERS = {
    "npy": lambda path: np.save(path, np.zeros(200_000)),
    "pt": lambda path: torch.save({"weights": torch.zeros(200_000)}, path),
    "parquet": lambda path: pd.DataFrame({"a": np.arange(200_000)}).to_parquet(path),
    "csv": lambda path: pd.DataFrame({"a": np.arange(200_000)}).to_csv(path),
    "nii": lambda path: nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64, 64)), np.eye(4)), path),
    "json": lambda path: path.write_text(json.dumps(list(range(300_000)))),
}


def test_every_writer_on_a_full_tmpfs_gives_one_clear_error(small_disk):
    _fill(small_disk, 64 * 1024)
    before = sorted(p.name for p in small_disk.iterdir())
    for suffix, write in WRITERS.items():
        target = small_disk / f"out.{suffix}"
        with pytest.raises(NoSpaceLeft, match=f"no space left writing {target}"):
            with atomic_path(target) as temp:
                write(temp)
        assert sorted(p.name for p in small_disk.iterdir()) == before, suffix


def test_segment_on_a_full_disk_exits_2_and_resumes_once_space_is_freed(tmp_path, small_disk):
    data = tmp_path / "data"
    run_synth(SynthConfig(out_dir=data, n_scans=3, seed=1, shape=(48, 48, 48), spacing=(7.0, 7.0, 7.0),
                          preview=False))
    out = small_disk / "masks"
    filler = _fill(small_disk, 24 * 1024)
    args = ["segment", str(data / "ct"), "-o", str(out), "--engine", "import", "--from", str(data / "masks")]
    full = CliRunner().invoke(app, args)
    assert full.exit_code == 2, full.output
    assert "no space left writing" in full.output and "Traceback" not in full.output
    assert not [p for p in out.rglob(".*") if p.name != ".ctglip-stage"], "temp files left behind"
    filler.unlink()
    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["items"]) == 3 and {i["status"] for i in manifest["items"].values()} == {"ok"}
