"""The checkpoint file: what ``ctglip pretrain`` saves and ``zeroshot`` / ``--resume`` load.

Checkpoints hold only tensors and plain Python values so they load with
``torch.load(weights_only=True)``; writes are atomic (temp file + rename).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stages.common.atomic import atomic_path

CHECKPOINT_FORMAT = "ctglip.checkpoint/1"
LAST_CHECKPOINT = "last.pt"
FINAL_CHECKPOINT = "final.pt"
_REQUIRED_KEYS = ("format", "model", "optimizer", "scheduler", "step", "epoch", "rng", "config")


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (a killed run leaves the previous file intact)."""
    with atomic_path(path) as temp:
        torch.save(checkpoint, temp)


def read_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint with ``weights_only=True``; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise ValueError(f"{path}: not a loadable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: not a ctglip checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    missing = [key for key in _REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    return checkpoint
