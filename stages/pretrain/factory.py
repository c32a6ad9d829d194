"""Architecture presets (JSON registry), model construction, and checkpoint loading.

A model is rebuilt from its config dict alone, and that dict travels inside every
checkpoint, so ``zeroshot`` needs nothing but the checkpoint file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from stages.common.errors import SetupError
from stages.pretrain.checkpoint import Checkpoint, CheckpointError, read_checkpoint
from stages.pretrain.model import CNNEncoder, CTGlipModel, ViTEncoder

PRESET_DIR = Path(__file__).with_name("configs")
ENCODERS = ("cnn", "vit")
_COMMON_KEYS = {"encoder", "input_size", "working_size", "embed_dim", "image_hidden", "text_hidden",
                "init_temperature", "temperature_range"}
_OPTIONAL_KEYS = {"position_features": False, "pooling": "mean", "density_bins": 0,  # absent in older checkpoints
                  "density_source": "crop"}
_ENCODER_KEYS = {
    "cnn": {"filters", "strides", "feature_dim"},
    "vit": {"patch_size", "hidden_size", "num_layers", "num_heads"},
}


def list_presets() -> list[str]:
    """Preset names, ``<encoder>_<size>`` (e.g. ``cnn_tiny``)."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path, encoder: str = "cnn") -> dict[str, Any]:
    """``{"model": {...}, "train": {...}, "train_global": {...}}`` from a size name (``tiny``, ``base``)
    or a JSON file; ``train_global`` holds the settings where ``--mode global`` has its own best."""
    if encoder not in ENCODERS:
        raise SetupError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
    candidate = PRESET_DIR / f"{encoder}_{name_or_path}.json"
    path = candidate if candidate.is_file() else Path(name_or_path)
    if not path.is_file():
        sizes = sorted({name.split("_", 1)[1] for name in list_presets()})
        raise SetupError(f"config {name_or_path!r} is neither a preset ({', '.join(sizes)}) nor a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SetupError(f"{path}: unreadable config ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise SetupError(f"{path}: a config needs a \"model\" object (and optionally \"train\")")
    train, train_global = data.get("train", {}), data.get("train_global", {})
    if not isinstance(train, dict) or not isinstance(train_global, dict):
        raise SetupError(f"{path}: \"train\" and \"train_global\" must be objects")
    return {"model": dict(data["model"]), "train": dict(train), "train_global": dict(train_global),
            "source": str(path)}


def check_model_config(model_cfg: dict[str, Any]) -> None:
    """Raise ValueError naming missing or unknown keys."""
    encoder = model_cfg.get("encoder")
    if encoder not in ENCODERS:
        raise SetupError(f"model config: encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
    expected = _COMMON_KEYS | _ENCODER_KEYS[encoder]
    missing, unknown = sorted(expected - set(model_cfg)), sorted(set(model_cfg) - expected - set(_OPTIONAL_KEYS))
    if missing or unknown:
        raise SetupError(f"model config for {encoder}: missing keys {missing}, unknown keys {unknown}")
    if len(model_cfg["input_size"]) != 3:
        raise SetupError(f"model config: input_size must have 3 entries, got {model_cfg['input_size']}")
    working = model_cfg["working_size"]
    if working is not None and not 8 <= int(working) <= min(model_cfg["input_size"]):
        raise SetupError(f"model config: working_size {working} must be null or between 8 and the input size "
                         f"{model_cfg['input_size']}")


def build_model(model_cfg: dict[str, Any], text_dim: int) -> CTGlipModel:
    """A freshly initialised :class:`CTGlipModel` (seed torch first for reproducible weights)."""
    check_model_config(model_cfg)
    working = model_cfg["working_size"]
    encoder_size = [int(working)] * 3 if working else [int(size) for size in model_cfg["input_size"]]
    if model_cfg["encoder"] == "cnn":
        encoder: torch.nn.Module = CNNEncoder(model_cfg["filters"], model_cfg["strides"], model_cfg["feature_dim"])
    else:
        encoder = ViTEncoder(encoder_size, model_cfg["patch_size"], model_cfg["hidden_size"],
                             model_cfg["num_layers"], model_cfg["num_heads"])
    return CTGlipModel(encoder, text_dim=text_dim, embed_dim=model_cfg["embed_dim"],
                       working_size=int(working) if working else None, image_hidden=model_cfg["image_hidden"],
                       text_hidden=model_cfg["text_hidden"], init_temperature=model_cfg["init_temperature"],
                       temperature_range=model_cfg["temperature_range"],
                       position_features=bool(model_cfg.get("position_features", _OPTIONAL_KEYS["position_features"])),
                       pooling=str(model_cfg.get("pooling", _OPTIONAL_KEYS["pooling"])),
                       density_bins=int(model_cfg.get("density_bins", _OPTIONAL_KEYS["density_bins"])),
                       density_source=str(model_cfg.get("density_source", _OPTIONAL_KEYS["density_source"])))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[CTGlipModel, Checkpoint]:
    """Model (eval mode, on ``device``) and the validated checkpoint it came from (config, progress)."""
    checkpoint = read_checkpoint(Path(path), device)
    config = checkpoint.config
    try:
        model = build_model(config.model, int(config.text_encoder["dim"]))
    except (ValueError, SetupError) as error:
        raise CheckpointError(f"{path}: field config.model does not fit this ctglip ({error})") from error
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the model config stored with them ({error})") from error
    return model.to(device).eval(), checkpoint
