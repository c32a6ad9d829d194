"""Ceiling for global (whole-volume vs whole-report) validation retrieval on a labelled cache.

Suppose the image side told every finding perfectly: the scan's true labels (labels.csv, as
``ctglip synth`` writes) are mapped onto the frozen report embeddings by ridge regression fitted on the
training scans, and validation reports are retrieved from the mapped vector. The recall@1 of that
oracle bounds what a global model can reach when reports differ mostly in wording, and tells
whether a target such as "5x chance" is within reach of any image encoder on this data.

    python examples/global_retrieval_ceiling.py --cache demo/train/cache --labels demo/train/labels.csv
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stages.cache import load_cache
from stages.common.labels import read_labels
from stages.pretrain.data import split_scans


def oracle_recall(findings: np.ndarray, reports: np.ndarray, is_val: np.ndarray, ridge: float) -> float:
    """Recall@1 of validation reports retrieved from ridge(findings -> report embedding)."""
    design = np.c_[findings, np.ones(len(findings))]
    train, val = design[~is_val], design[is_val]
    weights = np.linalg.solve(train.T @ train + ridge * np.eye(design.shape[1]), train.T @ reports[~is_val])
    predicted = val @ weights
    predicted /= np.linalg.norm(predicted, axis=1, keepdims=True)
    targets = reports[is_val] / np.linalg.norm(reports[is_val], axis=1, keepdims=True)
    return float(np.mean((predicted @ targets.T).argmax(axis=1) == np.arange(len(targets))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="ctglip cache built with whole volumes")
    parser.add_argument("--labels", type=Path, required=True, help="labels.csv of the same scans")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="as in ctglip pretrain")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="pretraining seeds (splits)")
    parser.add_argument("--ridge", type=float, default=1.0)
    args = parser.parse_args()
    cache = load_cache(args.cache, kind="volume")
    labels = read_labels(args.labels)
    labels["finding"] = labels["organ"] + "/" + labels["abnormality"]
    table = labels.pivot_table(index="scan_id", columns="finding", values="present", aggfunc="max").fillna(0)
    scan_ids = cache.index["scan_id"].astype(str)
    missing = sorted(set(scan_ids) - set(table.index))
    if missing:
        raise SystemExit(f"{args.labels}: no labels for {len(missing)} cached scans, e.g. {missing[0]}")
    findings = table.loc[scan_ids].to_numpy(dtype=np.float64)
    reports = cache.text_embeddings[cache.index["text_id"].to_numpy()].astype(np.float64)
    for seed in args.seeds:
        is_val = scan_ids.isin(split_scans(scan_ids.tolist(), args.val_fraction, seed)).to_numpy()
        recall = oracle_recall(findings, reports, is_val, args.ridge)
        print(f"seed {seed}: {int(is_val.sum())} validation reports, oracle recall@1 {recall:.2f} "
              f"(chance {1 / is_val.sum():.2f}, {recall * is_val.sum():.1f}x chance)")


if __name__ == "__main__":
    main()
