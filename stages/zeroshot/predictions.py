"""One scan's embeddings -> rows of ``predictions.csv`` (and of the embeddings index)."""
from __future__ import annotations

import numpy as np
import torch

from stages.zeroshot.scoring import PromptBank, abnormality_probabilities, organ_ranking
from stages.zeroshot.sources import ScanSamples

VOLUME = "volume"  # the whole scan, as a global model sees it


def score_scan(samples: ScanSamples, embeddings: torch.Tensor, bank: PromptBank, scale: float) -> list[dict]:
    """Prediction rows for one scan (recognition for vocabulary organs, abnormalities for the label space).

    A global model's single volume embedding stands in for every organ of the scan, and is also
    scored as the pseudo-organ ``volume`` for findings no organ holds (when the label space has it).
    """
    rows = []
    per_organ = embeddings.expand(len(samples.organs), -1) if samples.global_image else embeddings
    vocabulary_index = {organ: j for j, organ in enumerate(bank.vocabulary)}
    known = [i for i, organ in enumerate(samples.organs) if organ in vocabulary_index]
    if known:
        probabilities = organ_ranking(per_organ[known], bank, scale)
        for row_probabilities, i in zip(probabilities, known):
            truth = vocabulary_index[samples.organs[i]]
            rows.append(dict(scan_id=samples.scan_id, organ=samples.organs[i], task="organ_recognition",
                             label=samples.organs[i], score=float(row_probabilities[truth]),
                             predicted_organ=bank.vocabulary[int(np.argmax(row_probabilities))],
                             rank=int(np.sum(row_probabilities > row_probabilities[truth])) + 1,
                             complete=samples.complete[i]))
    scored = [(organ, per_organ[i], samples.complete[i]) for i, organ in enumerate(samples.organs)]
    if samples.global_image:
        scored.append((VOLUME, embeddings[0], all(samples.complete)))
    for organ, embedding, complete in scored:
        if organ not in bank.label_space:
            continue
        scores = abnormality_probabilities(embedding, organ, bank, scale)
        for phrase, score in zip(bank.label_space[organ], scores):
            rows.append(dict(scan_id=samples.scan_id, organ=organ, task="abnormality", label=phrase,
                             score=float(score), predicted_organ=None, rank=None, complete=complete))
    return rows


def embedding_rows(samples: ScanSamples) -> list[dict]:
    """Index rows for the scan's embeddings: one per organ, or one ``volume`` row for a global model."""
    if samples.global_image:
        return [dict(scan_id=samples.scan_id, organ=VOLUME, complete=all(samples.complete),
                     volume_ml=float("nan"), source="volume")]
    return [dict(scan_id=samples.scan_id, organ=organ, complete=complete, volume_ml=volume, source="organ")
            for organ, complete, volume in zip(samples.organs, samples.complete, samples.volume_ml)]
