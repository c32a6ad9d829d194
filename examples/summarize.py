"""Print and save the demo's grounded-vs-global table from the two zeroshot metrics.json files.

    python examples/summarize.py demo --encoder cnn
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _interval(section: dict, name: str) -> tuple[float, float, float]:
    macro = section["macro"][name]
    return macro["value"], macro["ci_low"], macro["ci_high"]


def summary_rows(demo_dir: Path, encoder: str) -> list[dict[str, object]]:
    rows = []
    for mode in ("grounded", "global"):
        metrics = json.loads((demo_dir / "zeroshot" / f"{mode}-{encoder}" / "metrics.json").read_text())
        organs, abnormality = metrics["organ_recognition"], metrics["abnormality"]
        rows.append({"mode": mode, "top1": organs["top1"], "top1_ci": organs["top1_ci"],
                     "auc": _interval(abnormality, "auc"), "f1": _interval(abnormality, "f1"),
                     "threshold": abnormality["threshold"].get("method", "")})
    return rows


def _fmt(value: tuple[float, float, float]) -> str:
    return f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("demo_dir", type=Path)
    parser.add_argument("--encoder", default="cnn")
    args = parser.parse_args()
    rows = summary_rows(args.demo_dir, args.encoder)
    table = Table(title=f"ctglip demo: zero-shot on the synthetic test split ({args.encoder} encoder)")
    for column in ("pretraining", "organ top-1 [95% CI]", "abnormality AUC macro [95% CI]",
                   "abnormality F1 macro [95% CI]"):
        table.add_column(column)
    lines = ["| pretraining | organ top-1 [95% CI] | abnormality AUC macro [95% CI] | abnormality F1 macro [95% CI] |",
             "|---|---|---|---|"]
    for row in rows:
        cells = [row["mode"], _fmt((row["top1"], *row["top1_ci"])), _fmt(row["auc"]), _fmt(row["f1"])]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    Console().print(table)
    grounded, global_ = rows
    delta = (grounded["f1"][0] - global_["f1"][0]) * 100
    lines += ["", f"Grounded minus global macro F1: {delta:+.1f} points (threshold: {grounded['threshold']}).", ""]
    for mode in ("grounded", "global"):
        folder = f"zeroshot/{mode}-{args.encoder}"
        lines.append(f"![{mode} ROC]({folder}/roc_abnormalities.png) ![{mode} organ confusion]({folder}/confusion_organs.png)")
    (args.demo_dir / "results.md").write_text("# ctglip demo results\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    Console().print(f"grounded - global macro F1: {delta:+.1f} points; wrote {args.demo_dir / 'results.md'}")


if __name__ == "__main__":
    main()
