"""The checkpoint file: what ``ctglip pretrain`` saves and ``zeroshot`` / ``--resume`` load.

Its content is two versioned dataclasses, :class:`RunConfig` (everything needed to rebuild
the model and its inputs) and :class:`Checkpoint` (weights, optimizer state, progress), so
a renamed or missing field fails at load with the file and the field named, instead of a
``KeyError`` deep inside a later stage. On disk it is a plain dict of tensors and Python
values, so it loads with ``torch.load(weights_only=True)``; writes are atomic (temp file +
rename). Format 1 (no progress fields) still loads: its progress is derived from its epoch.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from stages.cache.preprocess import PreprocessConfig
from stages.common.atomic import atomic_path, remove_stale_temp_files
from stages.common.errors import InputError, SetupError

CHECKPOINT_FORMAT = "ctglip.checkpoint/2"
READABLE_FORMATS = ("ctglip.checkpoint/1", CHECKPOINT_FORMAT)
LAST_CHECKPOINT = "last.pt"
FINAL_CHECKPOINT = "final.pt"


class CheckpointError(InputError):
    """A file that is not a complete checkpoint written by ``ctglip pretrain``."""


@dataclass(frozen=True)
class CacheSource:
    """The cache a run trained on: where it was, its hashes, and how its samples were made."""

    path: str
    config_hash: str
    content_hash: str
    preprocess: PreprocessConfig

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "preprocess": self.preprocess.to_dict()}


@dataclass(frozen=True)
class RunConfig:
    """A run's ``config`` (also ``config.json``): enough to rebuild the model and prepare its inputs.

    ``model`` is the preset's model dict (checked by ``factory.check_model_config``), ``train``
    the ``TrainConfig`` as a dict, ``text_encoder`` at least ``id`` and ``dim``.
    """

    mode: str
    model: dict[str, Any]
    train: dict[str, Any]
    cache: CacheSource
    text_encoder: dict[str, Any]
    organ_vocab: list[str]
    abnormality_dictionary: dict[str, dict[str, int]]
    ctglip_version: str

    def to_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "cache": self.cache.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunConfig:
        values = _fields_of(cls, data, where, "config")
        cache = _fields_of(CacheSource, values["cache"], where, "config.cache")
        try:
            preprocess = PreprocessConfig.from_dict(cache["preprocess"])
        except (TypeError, ValueError, SetupError) as error:
            raise CheckpointError(f"{where}: field config.cache.preprocess does not fit this ctglip "
                                  f"({error})") from error
        for key in ("id", "dim"):
            if not isinstance(values["text_encoder"], dict) or key not in values["text_encoder"]:
                raise CheckpointError(f"{where}: field config.text_encoder.{key} is missing")
        return cls(**{**values, "cache": CacheSource(**{**cache, "preprocess": preprocess})})


@dataclass
class Checkpoint:
    """One saved training state. ``finished``: the run reached its last step (``final.pt``, or a
    ``last.pt`` written at the end); a killed or ``stop_after_steps`` run's ``last.pt`` is not.
    ``total_steps`` is None for format-1 files, which did not record it."""

    model: dict[str, torch.Tensor]
    config: RunConfig
    step: int
    total_steps: int | None
    epochs_done: int
    epochs_planned: int
    finished: bool
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    metrics: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """What ``torch.save`` writes (format :data:`CHECKPOINT_FORMAT`)."""
        return {"format": CHECKPOINT_FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)},
                "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Checkpoint:
        if data["format"] == "ctglip.checkpoint/1":
            data = _upgrade_format_1(data, where)
        values = _fields_of(cls, {k: v for k, v in data.items() if k != "format"}, where, "")
        return cls(**{**values, "config": RunConfig.from_dict(values["config"], where)})

    def describe_progress(self) -> str:
        """``step 12 of 96 (epoch 1 of 8)`` for warnings about unfinished runs."""
        total = f" of {self.total_steps}" if self.total_steps is not None else ""
        return f"step {self.step}{total} (epoch {self.epochs_done} of {self.epochs_planned})"


def _fields_of(cls: type, data: Any, where: str, prefix: str) -> dict[str, Any]:
    """``data``'s values for ``cls``'s fields; a missing or unknown one is a :class:`CheckpointError`."""
    label = f"{prefix}." if prefix else ""
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: field {prefix or 'checkpoint'} must be a dict, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    missing, unknown = sorted(known - set(data)), sorted(set(data) - known)
    if missing or unknown:
        parts = ([f"missing field{'s' * (len(missing) > 1)} {', '.join(label + m for m in missing)}"] if missing
                 else []) + ([f"unknown field{'s' * (len(unknown) > 1)} {', '.join(label + u for u in unknown)}"]
                             if unknown else [])
        raise CheckpointError(f"{where}: {'; '.join(parts)} (renamed or written by another ctglip version?)")
    return dict(data)


def _upgrade_format_1(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Format 1 stored ``epoch`` (epochs done) and no progress fields: derive them."""
    if "epoch" not in data or not isinstance(data.get("config"), dict):
        raise CheckpointError(f"{where}: missing field {'epoch' if 'epoch' not in data else 'config'}")
    planned = int(data["config"].get("train", {}).get("epochs", 0))
    upgraded = {key: value for key, value in data.items() if key != "epoch"}
    return {**upgraded, "epochs_done": int(data["epoch"]), "epochs_planned": planned, "total_steps": None,
            "finished": int(data["epoch"]) >= planned}


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically (a killed run leaves the previous file intact)."""
    with atomic_path(path) as temp:
        torch.save(checkpoint.to_dict(), temp)


def remove_partial_checkpoints(run_dir: Path) -> list[Path]:
    """Delete temp files a killed checkpoint write left in ``run_dir`` (one writer per run folder)."""
    return remove_stale_temp_files(Path(run_dir), (LAST_CHECKPOINT, FINAL_CHECKPOINT))


def read_checkpoint(path: Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint with ``weights_only=True``; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        holds = f" (it holds {found.group(1)})" if found else ""
        raise CheckpointError(f"{path}: refused: the file holds Python objects beyond tensors and plain "
                              f"values{holds}; ctglip only loads its own weights-only checkpoints, written "
                              "by `ctglip pretrain`") from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint, truncated or not written by torch.save "
                              f"({reason})") from None
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: not a ctglip checkpoint (format {found!r}, expected "
                              f"{' or '.join(map(repr, READABLE_FORMATS))})")
    return Checkpoint.from_dict(data, str(path))
