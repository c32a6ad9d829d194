"""Per-finding zero-shot AUC of several runs side by side (e.g. grounded beside global): one forest
plot from their ``ctglip zeroshot`` folders.

    python examples/plot_forest.py demo/zeroshot/grounded-cnn demo/zeroshot/global-cnn \
        --names grounded global -o demo/auc_grounded_vs_global.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from stages.zeroshot.plots import forest_series, plot_forest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+", help="ctglip zeroshot output folders (up to four)")
    parser.add_argument("--names", nargs="+", help="legend names (default: each run's mode and folder name)")
    parser.add_argument("--section", choices=("abnormality", "scan_labels"),
                        help="organ-level or scan-level AUCs (default: scan_labels where the runs have them)")
    parser.add_argument("--title", default="Zero-shot AUC per finding")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    if not 1 <= len(args.results) <= 4 or (args.names and len(args.names) != len(args.results)):
        parser.error("give one to four result folders and, with --names, one name per folder")
    series = []
    for index, folder in enumerate(args.results):
        metrics = json.loads((folder / "metrics.json").read_text())
        name = args.names[index] if args.names else f"{metrics.get('mode')} ({folder.name})"
        series.append(forest_series(metrics, name, args.section))
    plot_forest(series, args.output, args.title)
    print(args.output)


if __name__ == "__main__":
    main()
