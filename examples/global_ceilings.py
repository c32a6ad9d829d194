"""Why a whole-volume CLIP can stay at chance on a small dataset: two ceilings, measured per finding.

Zero-shot abnormality detection needs two things. The image side must carry the finding, and the
text side must rank the report of a scan with the finding closer to the positive prompts than to the
negative ones. This script measures both on a labelled training cache, without training a model:

* **text ceiling**: the zero-shot score (cosine to the positive minus cosine to the negative prompt
  ensemble, the order ``ctglip zeroshot``'s softmax gives) computed on the *true* training texts
  instead of image embeddings: the whole report for global, each organ's own text for grounded.
  It is what zero-shot would reach if the image encoder reproduced its text exactly. Computed with
  the frozen text encoder, and, with ``--checkpoint``, through that model's learned text projection.
* **image probe**: out-of-fold AUC (5-fold, ridge regression) of the input a global model gets
  besides the pixels, the whole scan's density histogram: whether the finding is in the data at all.

    python examples/global_ceilings.py --cache data/train/cache --labels data/train/labels.csv \\
        --checkpoint runs/global/final.pt --out runs/ceilings

Prints a per-finding table and writes OUT/ceilings.md and OUT/ceilings.png; a finding that has no positive
(or no negative) scan among these reads nan rather than being left out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stages.cache import load_cache
from stages.common.labels import read_labels
from stages.pretrain.factory import load_checkpoint
from stages.pretrain.model import log_fractions
from stages.zeroshot.encoder import load_text_encoder
from stages.zeroshot.metrics import auc as weighted_auc
from stages.zeroshot.prompts import abnormality_prompts, load_templates

FOLDS = 5


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(weighted_auc(labels, scores)[0])


def prompt_directions(encode, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """(organ, abnormality) -> mean positive minus mean negative prompt embedding (each L2-normalised)."""
    templates = load_templates()
    directions = {}
    for organ, abnormality in pairs:
        positive, negative = abnormality_prompts(templates, organ, abnormality)
        pos, neg = (F.normalize(encode(texts), dim=-1).mean(0) for texts in (positive, negative))
        directions[(organ, abnormality)] = (F.normalize(pos, dim=0) - F.normalize(neg, dim=0)).numpy()
    return directions


def text_scores(vectors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Zero-shot score order of texts: cos(text, positive) - cos(text, negative)."""
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ direction


def probe_auc(features: np.ndarray, present: np.ndarray, ridge: float = 1.0, seed: int = 0) -> float:
    """Out-of-fold AUC of ridge regression from features to the label."""
    order = np.random.default_rng(seed).permutation(len(present))
    scores = np.empty(len(present))
    design = np.c_[(features - features.mean(0)) / (features.std(0) + 1e-6), np.ones(len(features))]
    for fold in np.array_split(order, FOLDS):
        train = np.setdiff1d(order, fold)
        gram = design[train].T @ design[train] + ridge * np.eye(design.shape[1])
        scores[fold] = design[fold] @ np.linalg.solve(gram, design[train].T @ present[train])
    return auc(present, scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="ctglip cache of the training scans")
    parser.add_argument("--labels", type=Path, required=True, help="labels.csv of the same scans")
    parser.add_argument("--checkpoint", type=Path, help="a pretrained model whose text projection to use too")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    organs, volumes = load_cache(args.cache, kind="organ"), load_cache(args.cache, kind="volume")
    labels = read_labels(args.labels)
    pairs = sorted(set(zip(labels["organ"], labels["abnormality"])))
    encoder = load_text_encoder(organs.text_encoder, None, torch.device("cpu"))
    stored = torch.from_numpy(organs.text_embeddings.copy())  # the cache's frozen embedding of every training text
    spaces = {"frozen": (lambda embeddings: embeddings, stored)}
    if args.checkpoint:
        model, checkpoint = load_checkpoint(args.checkpoint)
        with torch.no_grad():
            spaces[f"{checkpoint.config.mode} projection"] = (model.encode_text, model.encode_text(stored))

    present = labels.pivot_table(index="scan_id", columns=["organ", "abnormality"], values="present", aggfunc="max")
    rows = []
    for space, (project, text_vectors) in spaces.items():
        with torch.no_grad():
            directions = prompt_directions(lambda texts: project(torch.from_numpy(encoder.encode(list(texts)))), pairs)
            report_vectors = text_vectors[volumes.index["text_id"].to_numpy()].numpy()
            organ_vectors = text_vectors[organs.index["text_id"].to_numpy()].numpy()
        for organ, abnormality in pairs:
            direction = directions[(organ, abnormality)]
            volume_labels = present[(organ, abnormality)].reindex(volumes.index["scan_id"]).to_numpy()
            organ_rows = organs.index["organ"] == organ
            organ_labels = present[(organ, abnormality)].reindex(organs.index.loc[organ_rows, "scan_id"]).to_numpy()
            rows.append({"organ": organ, "abnormality": abnormality, "space": space,
                         "global text ceiling": auc(volume_labels, text_scores(report_vectors, direction)),
                         "grounded text ceiling": auc(organ_labels, text_scores(organ_vectors[organ_rows.to_numpy()],
                                                                                direction))})
    table = pd.DataFrame(rows)
    histograms = log_fractions(torch.from_numpy(np.stack(volumes.index["density"].to_numpy()))).numpy()
    probe = {(organ, abnormality): probe_auc(histograms, present[(organ, abnormality)].reindex(
        volumes.index["scan_id"]).to_numpy().astype(float)) for organ, abnormality in pairs}
    wide = table.pivot_table(index=["organ", "abnormality"], columns="space",
                             values=["global text ceiling", "grounded text ceiling"])
    wide = wide.reindex(pd.MultiIndex.from_tuples(pairs))  # pivot_table drops all-nan rows; keep every finding
    # a model's projection is shown for its own kind of text only (a global model never saw organ texts)
    wide = wide[[(kind, space) for kind, space in wide.columns if space == "frozen" or kind.startswith(space.split()[0])]]
    wide.columns = [f"{kind}, {space}" for kind, space in wide.columns]
    wide["image probe (scan histogram)"] = [probe[key] for key in wide.index]
    macro = wide.mean().to_frame().T
    macro.index = pd.MultiIndex.from_tuples([("macro", "")])
    wide = pd.concat([wide, macro])
    args.out.mkdir(parents=True, exist_ok=True)
    header = ["finding", *wide.columns]
    markdown = "\n".join(["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + [
        f"| {organ} / {abnormality} | " + " | ".join(f"{value:.3f}" for value in values) + " |"
        for (organ, abnormality), values in zip(wide.index, wide.to_numpy())])
    (args.out / "ceilings.md").write_text(f"{len(volumes.index)} training scans, AUC per finding\n\n{markdown}\n")
    print(markdown)

    figure = Figure(figsize=(7, 0.32 * len(wide) + 1.5))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    positions = np.arange(len(wide))
    height = 0.8 / len(wide.columns)
    for k, column in enumerate(wide.columns):
        axis.barh(positions + k * height, wide[column], height=height, label=column)
    axis.axvline(0.5, color="black", linewidth=0.8, linestyle="--")
    axis.set_yticks(positions + 0.4 - height / 2, [f"{o} / {a}".strip(" /") for o, a in wide.index])
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("AUC (0.5 = chance)")
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06 * 20 / len(wide)), ncol=2)
    figure.savefig(args.out / "ceilings.png", dpi=120, bbox_inches="tight")
    print(f"wrote {args.out / 'ceilings.md'} and {args.out / 'ceilings.png'}")


if __name__ == "__main__":
    main()
