"""CT-GLIP objectives, free of global state: rank and world size are constructor arguments.

Conventions that make a DDP run equal to one process on the same global batch: every
loss returns, on each rank, a value whose mean over ranks is the global-batch loss,
and whose gradient, once DDP averages it over ranks, is the global-batch gradient.
Gathers with gradients sum each rank's gradient into the owner's slice, which is why
per-sample terms below are scaled by the world size over the *global* count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stages.pretrain.distributed import all_gather_no_grad, all_gather_with_grad, all_reduce_sum


def gather_features(features: torch.Tensor, rank: int, world_size: int, with_grad: bool) -> torch.Tensor:
    """Rows from every rank in rank order (the tensor itself for one process)."""
    if world_size == 1:
        return features
    if with_grad:
        return all_gather_with_grad(features)
    return all_gather_no_grad(features, rank, world_size)


def same_text_targets(row_ids: torch.Tensor, column_ids: torch.Tensor) -> torch.Tensor:
    """Soft targets: each row spreads its mass evenly over the columns with its own text.

    Pairs with identical texts (typically normal organs sharing a template) are positives,
    not negatives: the false-negative problem fVLM describes.
    """
    same = (row_ids[:, None] == column_ids[None, :]).to(torch.float32)
    return same / same.sum(dim=1, keepdim=True).clamp(min=1.0)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row cross-entropy against a target distribution; ``ignore`` masks columns out."""
    if ignore is not None:
        logits = logits.masked_fill(ignore, float("-inf"))
    log_probs = F.log_softmax(logits, dim=1)
    if ignore is not None:
        log_probs = log_probs.masked_fill(ignore, 0.0)
    return -(targets * log_probs).sum(dim=1)


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE over the global batch with soft targets on identical texts.

    Used for organ-text pairs (grounded mode) and volume-report pairs (global mode).
    ``local_loss`` scores only this rank's rows against all gathered columns (less memory);
    ``gather_with_grad`` lets gradients flow into other ranks' embeddings (exact global-batch
    gradients; without it only the local slot gets gradients, as in open_clip's default).
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_loss: bool = False, gather_with_grad: bool = True):
        super().__init__()
        self.rank, self.world_size = rank, world_size
        self.local_loss, self.gather_with_grad = local_loss, gather_with_grad

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, text_ids: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        all_images = gather_features(image_features, self.rank, self.world_size, self.gather_with_grad)
        all_texts = gather_features(text_features, self.rank, self.world_size, self.gather_with_grad)
        all_ids = gather_features(text_ids, self.rank, self.world_size, with_grad=False)
        if self.local_loss:
            row_images, row_texts, row_ids = image_features, text_features, text_ids
        else:
            row_images, row_texts, row_ids = all_images, all_texts, all_ids
        targets = same_text_targets(row_ids, all_ids)
        image_to_text = soft_cross_entropy(logit_scale * row_images @ all_texts.T, targets)
        text_to_image = soft_cross_entropy(logit_scale * row_texts @ all_images.T, targets)
        return (image_to_text.mean() + text_to_image.mean()) / 2


class CandidateLoss(nn.Module):
    """Each image against its own candidate set of texts, with soft targets.

    The abnormality-dictionary objective uses it with candidates = the organ's normal text
    plus every dictionary phrase of that organ, so rare abnormalities meet all their organ's
    alternatives in every batch; the optional organ-name term uses all organ names.
    ``candidate_index`` [B, K] holds rows of ``candidate_features`` (-1 pads); column 0 must
    be valid. Rows whose targets are all zero do not count.
    """

    def __init__(self, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.rank, self.world_size = rank, world_size

    def forward(self, image_features: torch.Tensor, candidate_features: torch.Tensor,
                candidate_index: torch.Tensor, targets: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        padding = candidate_index < 0
        all_logits = logit_scale * image_features @ candidate_features.T
        logits = torch.gather(all_logits, 1, candidate_index.clamp(min=0))
        targets = targets.masked_fill(padding, 0.0)
        mass = targets.sum(dim=1, keepdim=True)
        valid = (mass.squeeze(1) > 0) & ((~padding).sum(dim=1) > 1)
        per_sample = soft_cross_entropy(logits, targets / mass.clamp(min=1e-12), ignore=padding)
        return global_mean(per_sample, valid, self.world_size)


def global_mean(values: torch.Tensor, valid: torch.Tensor, world_size: int) -> torch.Tensor:
    """This rank's share of the mean over the global batch's valid rows (see module docstring)."""
    count = all_reduce_sum(valid.sum().to(values.dtype), world_size)
    local_sum = torch.where(valid, values, torch.zeros_like(values)).sum()
    return local_sum * world_size / count.clamp(min=1.0)
