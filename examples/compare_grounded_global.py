"""Grounded (CT-GLIP) vs global (vanilla CLIP) pretraining over several seeds: mean +- sd.

Runs real ``ctglip pretrain`` and ``ctglip zeroshot`` commands on a prepared cache (train split)
and a test split (CT folder, ``ctglip segment`` folder, labels.csv, abnormalities.json, e.g. from
``make demo``), then prints zero-shot organ top-1, macro AUC and macro F1 per mode.

    python examples/compare_grounded_global.py --cache demo/train/cache --test demo/test \
        --out demo/compare --encoder cnn --seeds 0 1 2 --epochs 6
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

MODES = ("grounded", "global")


def run_seed(args: argparse.Namespace, mode: str, seed: int) -> dict[str, float]:
    run_dir = args.out / f"{mode}-{args.encoder}-seed{seed}"
    zeroshot_dir = args.out / f"zeroshot-{mode}-{args.encoder}-seed{seed}"
    if not (run_dir / "final.pt").is_file():
        subprocess.run(["ctglip", "pretrain", str(args.cache), "-o", str(run_dir), "--mode", mode,
                        "--encoder", args.encoder, "--config", args.config, "--epochs", str(args.epochs),
                        "--seed", str(seed), "--device", args.device, *args.pretrain_args], check=True)
    subprocess.run(["ctglip", "zeroshot", str(run_dir / "final.pt"), "--ct-dir", str(args.test / "ct"),
                    "--masks-dir", str(args.test / "segmentations"), "--labels", str(args.test / "labels.csv"),
                    "--abnormalities", str(args.test / "abnormalities.json"), "-o", str(zeroshot_dir),
                    "--overwrite", "--device", args.device], check=True)
    metrics = json.loads((zeroshot_dir / "metrics.json").read_text())
    return {"top1": metrics["organ_recognition"]["top1"], "auc": metrics["abnormality"]["auc_macro"],
            "f1": metrics["abnormality"]["f1_macro"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encoder", default="cnn", choices=("cnn", "vit"))
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-args", nargs=argparse.REMAINDER, default=["--include-incomplete"],
                        help="extra `ctglip pretrain` options (last on the line)")
    args = parser.parse_args()
    results = {mode: [run_seed(args, mode, seed) for seed in args.seeds] for mode in MODES}
    print(f"\n{args.encoder} encoder, seeds {args.seeds}, {args.epochs} epochs (mean +- sd)")
    print(f"{'mode':<10} {'organ top-1':>16} {'AUC macro':>16} {'F1 macro':>16}")
    for mode, runs in results.items():
        cells = []
        for key in ("top1", "auc", "f1"):
            values = [run[key] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} +- {spread:.3f}")
        print(f"{mode:<10} " + " ".join(f"{cell:>16}" for cell in cells))
    gain = [(g["f1"] - b["f1"]) * 100 for g, b in zip(results["grounded"], results["global"])]
    print(f"grounded - global macro F1: {statistics.mean(gain):+.1f} points per seed {[round(x, 1) for x in gain]}")


if __name__ == "__main__":
    main()
