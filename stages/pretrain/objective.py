"""The weighted CT-GLIP objective for one batch: organ-text contrastive (or volume-report in
global mode), abnormality-dictionary, and the optional organ-name term."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from stages.pretrain.config import TrainConfig
from stages.pretrain.data import CandidateTable
from stages.pretrain.loss import CandidateLoss, ContrastiveLoss


class Objective:
    """Runs the model on a batch and combines the loss terms by their configured weights.

    Every text the step needs (the batch's texts plus all dictionary and organ-name
    candidates) goes through the model in the same call as the images, so a DDP-wrapped
    model sees all its parameters used.
    """

    def __init__(self, train: TrainConfig, text_embeddings: torch.Tensor, candidates: CandidateTable | None,
                 rank: int = 0, world_size: int = 1):
        device = text_embeddings.device
        self.text_embeddings = text_embeddings
        self.grounded = candidates is not None
        self.weights = {"organ_text": train.organ_text_weight}
        if candidates is not None:
            self.weights.update(abnormality=train.abnormality_weight, organ_name=train.organ_name_weight)
            self.extra_text_ids = torch.tensor(candidates.text_ids, dtype=torch.long, device=device)
            self.organ_candidates = torch.from_numpy(candidates.organ_index).to(device)
            self.name_candidates = torch.from_numpy(candidates.name_index).to(device)
        else:
            self.extra_text_ids = torch.zeros(0, dtype=torch.long, device=device)
        self.contrastive = ContrastiveLoss(rank, world_size, train.local_loss, train.gather_with_grad)
        self.candidate_loss = CandidateLoss(rank, world_size)

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor],
                 autocast: Callable[[], AbstractContextManager] = nullcontext,
                 channels_last: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Total loss, its unweighted terms, and the logit scale used."""
        device = self.text_embeddings.device
        image = batch["image"].to(device, non_blocking=True)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last_3d)
        mask = batch["mask"].to(device, non_blocking=True) if self.grounded else None
        position = batch["position"].to(device) if self.grounded else None
        density = batch["density"].to(device) if "density" in batch else None
        text_ids = batch["text_id"].to(device)
        text_input = self.text_embeddings[torch.cat([text_ids, self.extra_text_ids])]
        with autocast():
            image_features, text_features, logit_scale = model(image, mask, text_input, position, density)
        image_features, text_features, logit_scale = image_features.float(), text_features.float(), logit_scale.float()
        size = text_ids.shape[0]
        batch_texts, candidate_texts = text_features[:size], text_features[size:]
        terms = {"organ_text": self.contrastive(image_features, batch_texts, text_ids, logit_scale)}
        if self.grounded and self.weights["abnormality"] > 0:
            organ_index = batch["organ_index"].to(device)
            terms["abnormality"] = self.candidate_loss(image_features, candidate_texts,
                                                       self.organ_candidates[organ_index],
                                                       batch["dictionary_targets"].to(device), logit_scale)
        if self.grounded and self.weights["organ_name"] > 0:
            organ_index = batch["organ_index"].to(device)
            names = self.name_candidates[None].expand(size, -1)
            targets = F.one_hot(organ_index, names.shape[1]).float()
            terms["organ_name"] = self.candidate_loss(image_features, candidate_texts, names, targets, logit_scale)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        return loss, terms, logit_scale
