"""The one listing of a CT folder, shared by ``segment``, ``cache`` and ``zeroshot``.

Every entry is accounted for: a usable scan, a failed item with the reason (two files for
one scan id, a broken link, a folder or unreadable file with a NIfTI name, an unsafe id),
or an ignored file that is not named like a NIfTI. Two files whose ids differ only in case
are one scan id too: on a case-insensitive file system their outputs would overwrite each
other, and on any file system one of them is most likely a copy.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.ids import InvalidScanId, is_nifti_name, scan_id_from_path
from stages.common.manifest import ItemStatus
from stages.common.nifti import InputError


@dataclass
class CtFolder:
    """``scans``: scan id -> file, sorted by id; ``rejected``: failed items (id, or file name when the
    id is unusable); ``ignored``: file name -> why it is not a CT (not named ``*.nii.gz`` / ``*.nii``)."""

    folder: Path
    scans: dict[str, Path] = field(default_factory=dict)
    rejected: list[ItemStatus] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)


def list_ct_folder(folder: Path) -> CtFolder:
    """List ``folder`` (not recursive); an absent folder or one without any NIfTI entry is an InputError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: CT folder does not exist (or is not a folder)")
    listing = CtFolder(folder)
    by_key: dict[str, list[tuple[str, Path]]] = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not is_nifti_name(path.name):
            listing.ignored[path.name] = "not a NIfTI file name (*.nii.gz, *.nii)"
            continue
        try:
            scan_id = scan_id_from_path(path)
        except InvalidScanId as error:
            listing.rejected.append(ItemStatus(path.name, "failed", str(error)))
            continue
        problem = _unreadable(path)
        if problem:
            listing.rejected.append(ItemStatus(scan_id, "failed", f"{path}: {problem}"))
            continue
        by_key.setdefault(scan_id.lower(), []).append((scan_id, path))
    for entries in by_key.values():
        if len(entries) == 1:
            scan_id, path = entries[0]
            listing.scans[scan_id] = path
            continue
        names = ", ".join(str(path) for _, path in entries)
        for scan_id in dict.fromkeys(scan_id for scan_id, _ in entries):
            listing.rejected.append(ItemStatus(scan_id, "failed", f"scan id {scan_id} is given by {len(entries)} "
                                               f"files ({names}); keep one of them"))
    listing.scans = dict(sorted(listing.scans.items()))
    listing.rejected.sort(key=lambda item: item.item_id)
    if not listing.scans and not listing.rejected:
        others = f" (it holds {len(listing.ignored)} other files, e.g. {next(iter(listing.ignored))})" \
            if listing.ignored else " (it is empty)"
        raise InputError(f"{folder}: no CT files (*.nii.gz, *.nii) in this folder{others}")
    return listing


def _unreadable(path: Path) -> str | None:
    """Why ``path`` (NIfTI-named) cannot be read as a file, or None."""
    try:
        mode = path.stat().st_mode  # follows links
    except FileNotFoundError:
        if path.is_symlink():
            return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
        return "disappeared while the folder was listed"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a NIfTI file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a pipe, socket or device)"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None
