"""The output folder's rules: one run per folder, replaced only when asked."""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import SetupError
from stages.common.manifest import MANIFEST_NAME
from stages.zeroshot import io
from stages.zeroshot.plots import CONFUSION_PLOT, FOREST_PLOT, FOREST_SCAN_PLOT, ROC_PLOT, ROC_SCAN_PLOT

OUTPUT_FILES = (io.PREDICTIONS_FILE, io.METRICS_FILE, io.EMBEDDINGS_FILE, io.EMBEDDINGS_INDEX_FILE,
                CONFUSION_PLOT, ROC_PLOT, FOREST_PLOT, ROC_SCAN_PLOT, FOREST_SCAN_PLOT, MANIFEST_NAME)


def prepare_output(output_dir: Path, overwrite: bool) -> None:
    """Refuse to mix two runs' files; with ``overwrite``, drop the old run's listed outputs."""
    manifest = output_dir / MANIFEST_NAME
    if manifest.is_file():
        if not overwrite:
            raise SetupError(f"{output_dir} already holds a ctglip zeroshot run; pass --overwrite "
                                  "or choose another output folder")
        for name in OUTPUT_FILES:
            (output_dir / name).unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
