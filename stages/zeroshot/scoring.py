"""Embeddings and zero-shot scores with a pretrained CT-GLIP model.

Prompt ensembles are embedded with the checkpoint's frozen text encoder, projected by
the model's text head, averaged and re-normalised (open_clip's
``build_zero_shot_classifier``). Abnormality scores are a softmax over the positive
and negative ensembles, as CT-CLIP and fVLM score findings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stages.common.text_encoder import TextEncoder
from stages.zeroshot.prompts import PromptTemplates, abnormality_prompts, organ_prompts


@dataclass
class PromptBank:
    """Prompt-ensemble embeddings in the model's joint space ([*, P], L2-normalised)."""

    vocabulary: list[str]  # organ names recognition chooses from (the checkpoint's organ vocabulary)
    organ_matrix: torch.Tensor  # [O, P]
    label_space: dict[str, list[str]]  # organ -> abnormality phrases scored for it
    positive: dict[str, torch.Tensor]  # organ -> [K, P]
    negative: dict[str, torch.Tensor]  # organ -> [K, P]


def logit_scale_of(model: torch.nn.Module) -> float:
    """The model's (clamped) inverse temperature as a float."""
    scale = model.logit_scale
    scale = scale() if callable(scale) else scale
    return float(torch.as_tensor(scale).detach().float().reshape(-1)[0])


@torch.no_grad()
def ensemble_embeddings(model: torch.nn.Module, encoder: TextEncoder, ensembles: list[list[str]],
                        device: torch.device) -> torch.Tensor:
    """One L2-normalised vector per ensemble: mean of its prompts' projected embeddings.

    Every distinct prompt is encoded once, in one call, however many ensembles share it.
    """
    unique = sorted({text for ensemble in ensembles for text in ensemble})
    row = {text: i for i, text in enumerate(unique)}
    projected = model.encode_text(torch.from_numpy(encoder.encode(unique)).to(device))
    means = torch.stack([projected[[row[text] for text in ensemble]].mean(dim=0) for ensemble in ensembles])
    return F.normalize(means, dim=-1)


def build_prompt_bank(model: torch.nn.Module, encoder: TextEncoder, templates: PromptTemplates,
                      vocabulary: list[str], label_space: dict[str, list[str]],
                      device: torch.device) -> PromptBank:
    """Embed every organ and abnormality ensemble once, before any scan is read."""
    pairs = [(organ, abnormality_prompts(templates, organ, phrase))
             for organ, phrases in label_space.items() for phrase in phrases]
    ensembles = ([organ_prompts(templates, organ) for organ in vocabulary]
                 + [positive for _, (positive, _) in pairs] + [negative for _, (_, negative) in pairs])
    matrix = ensemble_embeddings(model, encoder, ensembles, device)
    organ_matrix, abnormality_rows = matrix[:len(vocabulary)], matrix[len(vocabulary):]
    positive_rows, negative_rows = abnormality_rows[:len(pairs)], abnormality_rows[len(pairs):]
    positive, negative, start = {}, {}, 0
    for organ, phrases in label_space.items():
        positive[organ] = positive_rows[start:start + len(phrases)]
        negative[organ] = negative_rows[start:start + len(phrases)]
        start += len(phrases)
    return PromptBank(list(vocabulary), organ_matrix, label_space, positive, negative)


@torch.no_grad()
def embed_images(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray | None,
                 positions: np.ndarray | None, batch_size: int, device: torch.device,
                 densities: np.ndarray | None = None) -> torch.Tensor:
    """Image embeddings [N, P] of ``images`` [N, D, H, W] pooled inside ``masks`` (None: whole
    volume); ``positions`` [N, 3] are the crops' centres (used by position-aware models),
    ``densities`` [N, bins] their native HU histograms (models with ``density_source`` scan)."""
    chunks = []
    for start in range(0, len(images), batch_size):
        image = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32))
        mask = position = density = None
        if masks is not None:
            mask = torch.from_numpy(np.ascontiguousarray(masks[start:start + batch_size], dtype=bool))
            mask = mask.unsqueeze(1).to(device)
        if positions is not None:
            position = torch.from_numpy(np.asarray(positions[start:start + batch_size], dtype=np.float32)).to(device)
        if densities is not None:
            density = torch.from_numpy(np.asarray(densities[start:start + batch_size], dtype=np.float32)).to(device)
        chunks.append(model.encode_image(image.unsqueeze(1).to(device), mask, position, density))
    return torch.cat(chunks)


def organ_ranking(embeddings: torch.Tensor, bank: PromptBank, scale: float) -> np.ndarray:
    """Softmax probabilities [N, O] of each vocabulary organ for each embedding."""
    return torch.softmax(scale * embeddings @ bank.organ_matrix.T, dim=-1).cpu().numpy()


def abnormality_probabilities(embedding: torch.Tensor, organ: str, bank: PromptBank, scale: float) -> np.ndarray:
    """P(abnormal) per phrase of ``organ``: softmax over (positive, negative) ensemble similarities."""
    positive = scale * bank.positive[organ] @ embedding
    negative = scale * bank.negative[organ] @ embedding
    return torch.softmax(torch.stack([positive, negative], dim=-1), dim=-1)[:, 0].cpu().numpy()
