"""Grounded (CT-GLIP) vs global (vanilla CLIP) zero-shot macro AUC and F1 against the number of
training scans, with 95 % bootstrap intervals, on one test split: the figure CT-GLIP's argument
rests on (grounding should need fewer scans).

Each ``--cache N=DIR`` is a ``ctglip cache`` of N training scans. Runs are real ``ctglip pretrain``
and ``ctglip zeroshot`` commands with default settings, kept in OUT/n<N>/ with the names
``examples/compare_grounded_global.py`` uses, so finished runs (of either script) are reused:
link OUT/n200 to a comparison's output folder to reuse its seeds.

    python examples/data_size_curve.py --cache 100=data/train100/cache 200=data/train/cache \\
        400=data/train400/cache --test data/test --out runs/size --seeds 0
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

MODES = ("grounded", "global")
METRICS = (("auc", "macro AUC"), ("f1", "macro F1"))


def run_point(args: argparse.Namespace, size: int, cache: Path, mode: str, seed: int) -> dict[str, float]:
    """One finished (or newly run) pretrain + zeroshot; the macro figures with their intervals."""
    out = args.out / f"n{size}"
    run_dir, zeroshot_dir = out / f"{mode}-{args.encoder}-seed{seed}", out / f"zeroshot-{mode}-{args.encoder}-seed{seed}"
    if not (run_dir / "final.pt").is_file():
        subprocess.run(["ctglip", "pretrain", str(cache), "-o", str(run_dir), "--mode", mode, "--encoder",
                        args.encoder, "--seed", str(seed), "--device", args.device, *args.pretrain_args], check=True)
    if not (zeroshot_dir / "metrics.json").is_file():
        subprocess.run(["ctglip", "zeroshot", str(run_dir / "final.pt"), "--ct-dir", str(args.test / "ct"),
                        "--masks-dir", str(args.test / "segmentations"), "--labels", str(args.test / "labels.csv"),
                        "--abnormalities", str(args.test / "abnormalities.json"), "-o", str(zeroshot_dir),
                        "--overwrite", "--device", args.device], check=True)
    macro = json.loads((zeroshot_dir / "metrics.json").read_text())["abnormality"]["macro"]
    return {key: macro[key]["value"] for key, _ in METRICS} | {
        f"{key}_ci": [macro[key]["ci_low"], macro[key]["ci_high"]] for key, _ in METRICS}


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean over seeds; the interval is the seeds' mean bootstrap interval (one seed: its own)."""
    result = {}
    for key, _ in METRICS:
        result[key] = statistics.mean(run[key] for run in runs)
        result[f"{key}_low"] = statistics.mean(run[f"{key}_ci"][0] for run in runs)
        result[f"{key}_high"] = statistics.mean(run[f"{key}_ci"][1] for run in runs)
    return result


def plot(points: dict[str, dict[int, dict[str, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(9, 3.6))
    for axis, (key, label) in zip(axes, METRICS):
        for mode, color in zip(MODES, ("tab:blue", "tab:gray")):
            sizes = sorted(points[mode])
            values = [points[mode][n][key] for n in sizes]
            low = [points[mode][n][key] - points[mode][n][f"{key}_low"] for n in sizes]
            high = [points[mode][n][f"{key}_high"] - points[mode][n][key] for n in sizes]
            axis.errorbar(sizes, values, yerr=[low, high], marker="o", capsize=4, color=color,
                          label="grounded (CT-GLIP)" if mode == "grounded" else "global (CLIP)")
        if key == "auc":
            axis.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted(points["grounded"]), [str(n) for n in sorted(points["grounded"])])
        axis.set_xlabel("training scans")
        axis.set_ylabel(f"zero-shot {label}")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="center right")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", nargs="+", required=True, help="N=CACHE_DIR for each training-set size")
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encoder", default="cnn", choices=("cnn", "vit"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pretrain-args", nargs=argparse.REMAINDER, default=[],
                        help="extra `ctglip pretrain` options (last on the line)")
    args = parser.parse_args()
    caches = {}
    for item in args.cache:
        size, _, path = item.partition("=")
        if not size.isdigit() or not path:
            parser.error(f"--cache takes N=DIR, got {item!r}")
        caches[int(size)] = Path(path)
    points = {mode: {size: summarise([run_point(args, size, cache, mode, seed) for seed in args.seeds])
                     for size, cache in sorted(caches.items())} for mode in MODES}
    lines = [f"{args.encoder} encoder, default settings, training seeds {args.seeds}; 95 % bootstrap intervals "
             "(mean of the seeds' intervals)", "",
             "| training scans | grounded AUC | global AUC | grounded F1 | global F1 |", "|---|---|---|---|---|"]
    for size in sorted(caches):
        cells = [f"{points[mode][size][key]:.3f} [{points[mode][size][f'{key}_low']:.3f}, "
                 f"{points[mode][size][f'{key}_high']:.3f}]" for key, _ in METRICS for mode in MODES]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    plot(points, args.out / "data_size_curve.png", f"{args.encoder}: zero-shot on {args.test}, seeds {args.seeds}")
    (args.out / "data_size_curve.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines) + f"\n\nplot: {args.out / 'data_size_curve.png'}")


if __name__ == "__main__":
    main()
