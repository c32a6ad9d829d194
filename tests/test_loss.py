"""CT-GLIP losses on one process: values against hand-written references, soft targets, candidates."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stages.pretrain.loss import CandidateLoss, ContrastiveLoss, same_text_targets, soft_cross_entropy


def unit_rows(count: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(count, dim, generator=generator), dim=1)


def test_distinct_texts_reduce_to_clip_loss():
    images, texts = unit_rows(6, seed=1), unit_rows(6, seed=2)
    scale = torch.tensor(10.0)
    logits = scale * images @ texts.T
    labels = torch.arange(6)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss = ContrastiveLoss()(images, texts, torch.tensor([5, 3, 9, 0, 1, 2]), scale)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_same_text_targets_spread_mass_over_identical_texts():
    targets = same_text_targets(torch.tensor([4, 4, 7]), torch.tensor([4, 4, 7]))
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert torch.equal(targets, expected)


def test_same_text_pairs_are_positives_not_negatives():
    """Two samples sharing a text id: the loss pulls each image toward the other's text
    (positive); with distinct ids it pushes it away (negative, the false-negative problem)."""
    t1, other = unit_rows(1, seed=3)[0], unit_rows(2, seed=10)
    t2 = F.normalize(t1 + 0.3 * other[0], dim=0)
    texts = torch.stack([t1, t2, other[1]])
    pull = {}
    for name, ids in (("shared", [0, 0, 1]), ("distinct", [0, 1, 2])):
        images = texts.clone().requires_grad_(True)
        ContrastiveLoss()(images, texts, torch.tensor(ids), torch.tensor(20.0)).backward()
        pull[name] = -float(images.grad[1] @ t1)  # > 0: a descent step moves image 2 toward text 1
    assert pull["shared"] > 0 > pull["distinct"]


def test_local_loss_equals_full_loss_on_one_process():
    images, texts = unit_rows(5, seed=4), unit_rows(5, seed=5)
    ids, scale = torch.tensor([0, 1, 1, 2, 3]), torch.tensor(14.0)
    full = ContrastiveLoss(local_loss=False)(images, texts, ids, scale)
    local = ContrastiveLoss(local_loss=True)(images, texts, ids, scale)
    assert torch.allclose(full, local)


def test_candidate_loss_matches_reference_and_ignores_padding():
    images, candidates = unit_rows(3, seed=6), unit_rows(5, seed=7)
    scale = torch.tensor(5.0)
    index = torch.tensor([[0, 1, 2], [3, 4, -1], [0, -1, -1]])
    targets = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    loss = CandidateLoss()(images, candidates, index, targets, scale)
    row0 = F.log_softmax(scale * images[0] @ candidates[[0, 1, 2]].T, dim=0)
    row1 = F.log_softmax(scale * images[1] @ candidates[[3, 4]].T, dim=0)
    expected = (-(row0[1] + row0[2]) / 2 - row1[0]) / 2  # row 2 has one candidate: nothing to contrast
    assert torch.allclose(loss, expected, atol=1e-6)

    moved = candidates.clone()
    moved[2] = -moved[2]  # only candidate of row 0; rows 1 and 2 must not notice
    row_one_only = CandidateLoss()(images[1:], moved, index[1:], targets[1:], scale)
    assert torch.allclose(row_one_only, -row1[0], atol=1e-6)


def test_candidate_rows_without_targets_do_not_count():
    images, candidates = unit_rows(2, seed=8), unit_rows(3, seed=9)
    index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    both = CandidateLoss()(images, candidates, index, targets, torch.tensor(3.0))
    first = CandidateLoss()(images[:1], candidates, index[:1], targets[:1], torch.tensor(3.0))
    assert torch.allclose(both, first)
    empty = CandidateLoss()(images, candidates, index, torch.zeros(2, 3), torch.tensor(3.0))
    assert float(empty) == 0.0


def test_soft_cross_entropy_is_finite_with_ignored_columns():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    ignore = torch.tensor([[False, False, True]])
    value = soft_cross_entropy(logits, torch.tensor([[1.0, 0.0, 0.0]]), ignore)
    assert math.isclose(float(value), math.log(1 + math.exp(-1.0)), rel_tol=1e-6)
