"""Typed configuration of ``ctglip pretrain``: a preset's model dict plus training settings."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stages.common.device import check_device_name
from stages.common.errors import SetupError
from stages.pretrain.factory import load_preset

MODES = ("grounded", "global")
PRECISIONS = ("auto", "fp32", "bf16")
RUN_ONLY_KEYS = ("num_workers", "compile", "checkpoint_every", "log_every")


@dataclass
class TrainConfig:
    """Optimisation and objective settings. ``batch_size`` is the *global* batch (all processes)."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.1
    organ_text_weight: float = 1.0
    abnormality_weight: float = 1.0
    organ_name_weight: float = 0.0
    include_incomplete: bool = True  # organs cut by the scan border are the norm in real CT
    oversample_abnormal: int = 1
    augment: bool = True
    jitter_hu: float = 15.0
    jitter_contrast: float = 0.02
    shift_voxels: int = 0
    flip_axes: tuple[int, ...] = ()
    local_loss: bool = False
    gather_with_grad: bool = True
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    num_workers: int = 0
    checkpoint_every: int = 50
    log_every: int = 5

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "lr", "checkpoint_every", "log_every", "oversample_abnormal")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SetupError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("jitter_hu", "jitter_contrast", "weight_decay", "grad_clip", "organ_text_weight",
                     "abnormality_weight", "organ_name_weight", "num_workers"):
            if getattr(self, name) < 0:
                raise SetupError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_fraction < 1:
            raise SetupError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.shift_voxels < 0:
            raise SetupError(f"shift_voxels must be >= 0, got {self.shift_voxels}")
        self.flip_axes = tuple(int(axis) for axis in self.flip_axes)
        if any(axis not in (0, 1, 2) for axis in self.flip_axes) or len(set(self.flip_axes)) != len(self.flip_axes):
            raise SetupError(f"flip_axes must be distinct volume axes among 0, 1, 2, got {list(self.flip_axes)}")
        if self.precision not in PRECISIONS:
            raise SetupError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists, as they come back from a checkpoint or preset)."""
        return {f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
                for f in fields(self)}


@dataclass
class PretrainConfig:
    """Everything one ``ctglip pretrain`` run needs; ``model`` is a preset's model dict.

    ``threads``: torch CPU threads for this run (None = torch's default, one per core). On a
    machine shared with other busy processes, fewer threads than cores avoid OpenMP threads
    spinning against each other, which can slow CPU training several-fold.
    """

    cache_dir: Path
    out_dir: Path
    mode: str = "grounded"
    model: dict[str, Any] = field(default_factory=lambda: load_preset("tiny", "cnn")["model"])
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    stop_after_steps: int | None = None

    def __post_init__(self) -> None:
        self.cache_dir, self.out_dir = Path(self.cache_dir), Path(self.out_dir)
        if self.threads is not None and self.threads < 1:
            raise SetupError(f"threads must be >= 1, got {self.threads}")
        if self.mode not in MODES:
            raise SetupError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.stop_after_steps is not None and self.stop_after_steps <= 0:
            raise SetupError(f"stop_after_steps must be positive, got {self.stop_after_steps}")
        check_device_name(self.device)


def make_config(cache_dir: Path, out_dir: Path, *, mode: str = "grounded", preset: str = "tiny",
                encoder: str | None = None, device: str = "auto", threads: int | None = None,
                resume: bool = False, stop_after_steps: int | None = None,
                **train_overrides: Any) -> PretrainConfig:
    """Config from a preset (``tiny``/``base`` or a JSON file) plus training overrides (None = keep)."""
    loaded = load_preset(preset, encoder or "cnn")
    file_encoder = loaded["model"].get("encoder")
    if encoder is not None and file_encoder != encoder:
        raise SetupError(f"{loaded['source']}: describes a {file_encoder!r} model, "
                         f"but encoder {encoder!r} was asked for")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted((set(loaded["train"]) | set(loaded["train_global"]) | set(train_overrides)) - known)
    if unknown:
        raise SetupError(f"unknown training settings {unknown} (known: {', '.join(sorted(known))})")
    preset = {**loaded["train"], **(loaded["train_global"] if mode == "global" else {})}
    settings = {**preset, **{key: value for key, value in train_overrides.items() if value is not None}}
    return PretrainConfig(cache_dir=cache_dir, out_dir=out_dir, mode=mode, model=loaded["model"],
                          train=TrainConfig(**settings), device=device, threads=threads, resume=resume,
                          stop_after_steps=stop_after_steps)
