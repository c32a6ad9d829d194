"""PNG figures of a synth run: example slices with their masks, and per-finding prevalence."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)
import numpy as np  # noqa: E402

from stages.common.atomic import atomic_path  # noqa: E402

WINDOW = (-1000.0, 400.0)


def _save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=90, metadata={"Software": None})
    plt.close(figure)


def plot_examples(path: Path, examples: list[dict]) -> None:
    """Axial and coronal slices of a few scans, organ outlines in colour, findings as titles.

    ``examples``: dicts with ``scan_id``, ``axial``/``coronal`` HU slices, ``axial_mask``/
    ``coronal_mask`` label slices (display orientation), ``axial_aspect``/``coronal_aspect``
    (pixel height / width in mm) and ``title``.
    """
    figure, axes = plt.subplots(2, len(examples), figsize=(3.2 * len(examples), 6.6), squeeze=False)
    for column, example in enumerate(examples):
        for row, view in enumerate(("axial", "coronal")):
            axis = axes[row, column]
            axis.imshow(example[view], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="nearest",
                        aspect=example[f"{view}_aspect"])
            labels = example[f"{view}_mask"]
            if labels.any():
                axis.contour(labels, levels=np.unique(labels)[1:] - 0.5, linewidths=0.4, cmap="tab20")
            axis.set_axis_off()
            if row == 0:
                axis.set_title(f"{example['scan_id']}\n{example['title']}", fontsize=6, loc="left")
    figure.suptitle("ctglip synth: example scans (lung window, organ outlines)", fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def plot_prevalence(path: Path, rows: list[tuple[str, float, float]]) -> None:
    """Per (organ, abnormality): fraction of scans with it in the image and in the report."""
    names = [name for name, _, _ in rows]
    image = np.array([value for _, value, _ in rows])
    report = np.array([value for _, _, value in rows])
    positions = np.arange(len(rows))
    figure, axis = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    axis.barh(positions - 0.2, image, height=0.4, label="in the image (labels.csv)")
    axis.barh(positions + 0.2, report, height=0.4, label="in the report")
    axis.set_yticks(positions, names, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("fraction of scans")
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title("ctglip synth: prevalence per organ and abnormality", fontsize=10)
    figure.tight_layout()
    _save(figure, path)
