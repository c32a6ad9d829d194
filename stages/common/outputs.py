"""Claiming a stage's output folder: one set of rules for every stage.

- A folder is *ours* when it is absent, empty, or marked by the same stage (``.ctglip-stage``
  written at claim time, or a ``manifest.json`` of that stage). A folder marked by another
  stage, or holding files ctglip did not write, is refused and never deleted.
- One writer at a time: a lock file beside the folder holds the writer's pid and host.
  A lock whose pid is dead on this host is stale and taken over with a warning; a live one
  (or one from another host) is refused with the command to run once that writer is gone.
- Without ``overwrite`` a run resumes: the stage keeps the items it finds finished.
- With ``overwrite`` the old folder is first renamed aside (one atomic rename), the run
  writes a fresh folder, and the old one is deleted only once the run has finished. A
  killed overwrite thus never leaves an old ``manifest.json`` beside new outputs: the
  folder simply has no manifest yet, downstream stages refuse it, and rerunning resumes.
  Aside folders left by killed runs are deleted by the next claim.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stages.common.atomic import write_json_atomic
from stages.common.errors import SetupError, no_space_is_setup_error
from stages.common.manifest import MANIFEST_NAME, STAGE_COMMANDS

STAGE_MARKER = ".ctglip-stage"
LOG = logging.getLogger("ctglip.outputs")


def lock_path(folder: Path, name: str = "") -> Path:
    """The lock file of ``folder``: a hidden sibling, so renaming the folder aside keeps it."""
    suffix = f".{name}" if name else ""
    return folder.parent / f".{folder.name}.ctglip-lock{suffix}"


def _aside_prefix(folder: Path) -> str:
    return f".{folder.name}.ctglip-replaced-"


def folder_stage(folder: Path) -> str | None:
    """The stage that wrote ``folder`` (marker first, then its manifest), or None."""
    for name in (STAGE_MARKER, MANIFEST_NAME):
        path = folder / name
        if path.is_file():
            try:
                stage = json.loads(path.read_text(encoding="utf-8")).get("stage")
            except (OSError, ValueError, AttributeError):
                stage = None
            return stage if isinstance(stage, str) else "unknown"
    return None


def check_output_folder(folder: Path, stage: str) -> None:
    """Refuse ``folder`` unless it is absent, empty or already this stage's output."""
    command = STAGE_COMMANDS.get(stage, stage)
    if folder.exists() and not folder.is_dir():
        raise SetupError(f"{folder}: exists and is not a folder; choose another -o/--output")
    if not folder.is_dir():
        ancestor = next(parent for parent in Path(folder).absolute().parents if parent.exists())
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            raise SetupError(f"{folder}: cannot be created in {ancestor} (not a writable folder); choose another "
                             "-o/--output")
        return
    owner = folder_stage(folder)
    if owner is None:
        foreign = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if foreign:
            raise SetupError(f"{folder}: holds files `{command}` did not write ({', '.join(foreign[:5])}"
                             f"{' ...' if len(foreign) > 5 else ''}); choose an empty or new folder")
    elif owner != stage:
        raise SetupError(f"{folder}: holds the output of `{STAGE_COMMANDS.get(owner, owner)}`, not of "
                         f"`{command}`; choose another folder")


@contextmanager
def claim_output(folder: str | Path, stage: str, overwrite: bool = False, lock_name: str = "") -> Iterator[Path]:
    """Hold ``folder`` for one run of ``stage``; yields the folder to write into.

    ``lock_name`` separates writers that may share a folder on purpose (shards of one job).
    Call it after the inputs are validated, so a run refused for bad input never moves an
    overwritten folder aside.
    """
    folder = Path(folder).absolute()
    check_output_folder(folder, stage)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(folder, lock_name)
    _take_lock(lock, stage)
    try:
        _remove_stale_asides(folder, lock_name)
        aside = _move_aside(folder) if overwrite and folder.is_dir() else None
        folder.mkdir(exist_ok=True)
        _write_marker(folder, stage)
        yield folder
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        _release_lock(lock)


def _write_marker(folder: Path, stage: str) -> None:
    marker = folder / STAGE_MARKER
    if not marker.is_file():
        write_json_atomic(marker, {"stage": stage})


def _move_aside(folder: Path) -> Path:
    aside = folder.parent / f"{_aside_prefix(folder)}{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    os.rename(folder, aside)
    return aside


def _remove_stale_asides(folder: Path, lock_name: str) -> None:
    """Delete folders a killed ``--overwrite`` left aside (we hold the lock, so none is live)."""
    if lock_name:  # shards share the folder: another shard's overwrite may still be running
        return
    for path in folder.parent.glob(f"{_aside_prefix(folder)}*"):
        LOG.warning("removing %s, left by an interrupted --overwrite of %s", path, folder)
        shutil.rmtree(path, ignore_errors=True)


def _lock_owner(lock: Path) -> dict:
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_lock(lock: Path, stage: str) -> None:
    """Create ``lock`` exclusively (write a temp file, then ``os.link``: never half-written)."""
    owner = {"stage": stage, "pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with no_space_is_setup_error(lock):
        handle, temp = tempfile.mkstemp(prefix=f"{lock.name}.", dir=lock.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(owner, stream)
            for _ in range(2):
                try:
                    os.link(temp, lock)
                    return
                except FileExistsError:
                    holder = _lock_owner(lock)
                    pid = holder.get("pid")
                    if holder.get("host") == owner["host"] and isinstance(pid, int) and not _pid_alive(pid):
                        LOG.warning("%s: taking over the lock of pid %s, which is no longer running", lock, pid)
                        lock.unlink(missing_ok=True)
                        continue
                    raise SetupError(
                        f"{lock}: the output folder is in use by "
                        f"`{STAGE_COMMANDS.get(holder.get('stage'), '?')}` (pid {pid} on {holder.get('host')}, "
                        f"since {holder.get('started')}); wait for it or, if that run is gone, delete this "
                        "lock file") from None
            raise SetupError(f"{lock}: could not take the lock (another run took it over at the same time)")
        finally:
            Path(temp).unlink(missing_ok=True)


def _release_lock(lock: Path) -> None:
    if _lock_owner(lock).get("pid") == os.getpid():
        lock.unlink(missing_ok=True)
