"""Atomic file writes: write a temp file in the target folder, then ``os.replace``.

A killed run therefore leaves either the old file or the new one, never half of one,
and resuming can trust every file it finds. A full disk raises
:class:`~stages.common.errors.NoSpaceLeft` naming the file, and the temp file is removed.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stages.common.errors import no_space_is_setup_error


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``target`` (same suffixes); move it into place on success."""
    target = Path(target)
    with no_space_is_setup_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(target.suffixes) or ".tmp"
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(handle)
        temp = Path(temp_name)
        try:
            yield temp
            if temp.is_file():
                os.chmod(temp, _default_file_mode())  # mkstemp makes 0600; outputs are meant to be shared
            os.replace(temp, target)
        finally:
            if temp.exists():
                temp.unlink()


def _default_file_mode() -> int:
    """0666 minus the process umask, i.e. what ``open(path, "w")`` would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return (stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH) & ~umask


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as temp:
        temp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def remove_stale_temp_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temp files :func:`atomic_path` left for ``names`` in ``folder`` when a write was killed.

    Only call this where no other process writes those files (the caller owns the folder).
    """
    stale = []
    for name in names:
        suffix = "".join(Path(name).suffixes) or ".tmp"
        stale += [path for path in folder.glob(f".{name}.*{suffix}") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
