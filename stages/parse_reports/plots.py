"""PNG summary of a parse-reports run: the most frequent abnormalities, and per organ how often
reports describe it and call it abnormal."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)

from stages.common.atomic import atomic_path  # noqa: E402

TOP_PHRASES = 25
TOP_ORGANS = 20


def plot_summary(path: Path, dictionary: dict[str, dict[str, int]], rows: list[dict[str, Any]]) -> None:
    """Left: top (organ, phrase) counts of the abnormality dictionary. Right: reports per organ."""
    pairs = sorted(((count, f"{organ}: {phrase}") for organ, phrases in dictionary.items()
                    for phrase, count in phrases.items()), reverse=True)[:TOP_PHRASES][::-1]
    described = Counter(row["organ"] for row in rows)
    abnormal = Counter(row["organ"] for row in rows if row["abnormal"])
    organs = [organ for organ, _ in described.most_common(TOP_ORGANS)][::-1]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 7))
    if pairs:
        left.barh([label for _, label in pairs], [count for count, _ in pairs], color="tab:red")
    left.set_title(f"abnormality dictionary: top {TOP_PHRASES} (reports stating it)", fontsize=9)
    left.tick_params(labelsize=7)
    if organs:
        right.barh(organs, [described[o] for o in organs], color="lightgray", label="described")
        right.barh(organs, [abnormal[o] for o in organs], color="tab:red", label="abnormal")
        right.legend(fontsize=7)
    right.set_title(f"reports describing each organ (top {TOP_ORGANS})", fontsize=9)
    right.tick_params(labelsize=7)
    figure.suptitle(f"ctglip parse-reports: {len({row['scan_id'] for row in rows})} reports, {len(rows)} organ texts",
                    fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=90, metadata={"Software": None})
    plt.close(figure)
