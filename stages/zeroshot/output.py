"""Zero-shot's output rule on top of :func:`stages.common.outputs.claim_output`.

A zero-shot run is not resumable (its metrics need every scan), so a folder that already
holds a finished run is refused unless ``--overwrite`` asks to replace it; claiming the
folder (foreign files, lock, atomic replacement) is the shared helper's job.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import SetupError
from stages.common.manifest import MANIFEST_NAME


def refuse_finished_run(output_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a finished run's results unless asked to."""
    if (output_dir / MANIFEST_NAME).is_file() and not overwrite:
        raise SetupError(f"{output_dir} already holds a ctglip zeroshot run; pass --overwrite "
                         "or choose another output folder")
