"""Validation: organ -> text retrieval recall@k on held-out scans.

For every validation sample, the candidates are the distinct texts of the validation
set (identical texts, e.g. a shared normal template, are one candidate); a hit means
the sample's own text ranks within the top k. Chance recall@1 is 1 / #candidates.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from stages.pretrain.data import CacheDataset
from stages.pretrain.model import CTGlipModel


def retrieval_recall(image_features: torch.Tensor, text_features: torch.Tensor, targets: torch.Tensor,
                     ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k of row i's target text ``targets[i]`` among all rows of ``text_features``."""
    similarity = image_features @ text_features.T
    own = similarity.gather(1, targets[:, None])
    rank = (similarity > own).sum(dim=1)
    metrics = {f"recall_at_{k}": float((rank < k).float().mean()) for k in ks}
    metrics["chance_at_1"] = 1.0 / text_features.shape[0]
    return metrics


@torch.no_grad()
def validate(model: CTGlipModel, dataset: CacheDataset, text_embeddings: torch.Tensor, grounded: bool,
             device: torch.device, batch_size: int,
             autocast: Callable[[], AbstractContextManager]) -> dict[str, float]:
    """Retrieval metrics of ``model`` on every sample of ``dataset`` (un-augmented)."""
    was_training = model.training
    model.eval()
    image_features, text_ids = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset.plain_item(position) for position in range(start, min(start + batch_size, len(dataset)))]
        image = torch.stack([item["image"] for item in items]).to(device)
        mask = torch.stack([item["mask"] for item in items]).to(device) if grounded else None
        position = torch.stack([item["position"] for item in items]).to(device) if grounded else None
        density = torch.stack([item["density"] for item in items]).to(device) if "density" in items[0] else None
        with autocast():
            image_features.append(model.encode_image(image, mask, position, density).float())
        text_ids.extend(int(item["text_id"]) for item in items)
    unique_ids = sorted(set(text_ids))
    position = {text_id: i for i, text_id in enumerate(unique_ids)}
    with autocast():
        text_features = model.encode_text(text_embeddings[unique_ids].to(device)).float()
    targets = torch.tensor([position[text_id] for text_id in text_ids], device=device)
    metrics = retrieval_recall(torch.cat(image_features), text_features, targets)
    metrics.update(val_samples=len(text_ids), val_texts=len(unique_ids))
    model.train(was_training)
    return metrics
