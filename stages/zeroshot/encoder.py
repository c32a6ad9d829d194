"""Which frozen text encoder embeds the prompts: the one the checkpoint was trained with.

A prompt embedded by another encoder lands in another space, so the dimension is checked
against the checkpoint's record before any scan is read.
"""
from __future__ import annotations

from pathlib import Path

import torch

from stages.common.errors import SetupError
from stages.common.text_encoder import DEFAULT_ENCODER_ID, TextEncoder


def load_text_encoder(recorded: dict, override: Path | None, device: torch.device) -> TextEncoder:
    """The checkpoint's frozen text encoder: ``override``, its recorded path, or its id."""
    if override is not None:
        encoder = TextEncoder.load(override, device=str(device))
    else:
        path, encoder_id = recorded.get("path"), recorded.get("id") or DEFAULT_ENCODER_ID
        use_path = path and (Path(path) / "config.json").is_file() and encoder_id != DEFAULT_ENCODER_ID
        encoder = TextEncoder.load(path if use_path else encoder_id, device=str(device))
    if recorded.get("dim") is not None and int(recorded["dim"]) != encoder.dim:
        raise SetupError(f"text encoder {encoder.encoder_id} gives {encoder.dim}-d vectors, but the checkpoint "
                         f"was trained on {recorded['dim']}-d ones ({recorded.get('id')})")
    return encoder
